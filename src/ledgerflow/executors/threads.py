"""The ``threads`` executor: jobs run in daemon threads of the scheduler's process.

Daemon threads, so that after Ctrl-C the process can exit even while a task is still
sleeping or computing (its run is already recorded ``interrupted``).
"""

from __future__ import annotations

import queue
import threading

from ledgerflow.engine.executor import ErrorInfo, Executor, Job, Outcome, WorkerEnv, worker_label


def failed_outcome(job: Job, exc: BaseException, why: str) -> Outcome:
    """An outcome for a job the executor itself could not run or return."""
    from ledgerflow.engine.worker import exception_name

    message = f"task {job.task.fullname} failed because {why}: {exception_name(exc)}: {exc}"
    return Outcome(job.id, error=ErrorInfo(exception_name(exc), message, message))


class ThreadExecutor(Executor):
    """A fixed set of worker threads sharing the run's database engines."""

    name = "threads"

    @property
    def capacity(self) -> int:
        return self.workers * 2

    def start(self, env: WorkerEnv) -> None:
        from ledgerflow.engine.worker import WorkerState

        self._state = WorkerState(env)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._in_flight = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"ledgerflow-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        from ledgerflow.engine.worker import run_job

        label = worker_label(thread=True)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                outcome = run_job(job, self._state, label)
            except BaseException as exc:
                outcome = failed_outcome(job, exc, "its thread was interrupted")
            self._done.put(outcome)

    def submit(self, job: Job) -> None:
        self._in_flight += 1
        self._jobs.put(job)

    def _drain(self, first: Outcome | None) -> list[Outcome]:
        outcomes = [] if first is None else [first]
        while True:
            try:
                outcomes.append(self._done.get_nowait())
            except queue.Empty:
                break
        self._in_flight -= len(outcomes)
        return outcomes

    def collect(self, timeout: float) -> list[Outcome]:
        if not self._in_flight:
            return []
        try:
            first = self._done.get(timeout=timeout)
        except queue.Empty:
            return []
        return self._drain(first)

    def take_finished(self) -> list[Outcome]:
        return self._drain(None)

    def shutdown(self, *, cancel: bool = False) -> None:
        if cancel:
            while True:
                try:
                    self._jobs.get_nowait()
                except queue.Empty:
                    break
        for _ in self._threads:
            self._jobs.put(None)
        if not cancel:
            for thread in self._threads:
                thread.join()
        self._state.close()


EXECUTOR = ThreadExecutor
