"""The ``processes`` executor: jobs run in worker processes (all cores by default).

Worker processes receive the run's settings (plain data) and open their own database
engines when a task uses ``context.session``. Results come back pickled; a result that
cannot be pickled fails its task with a message that names the task and the type.
Workers ignore Ctrl-C: the scheduler decides, and stops them.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ledgerflow.engine.executor import ErrorInfo, Executor, Job, Outcome, WorkerEnv, worker_label
from ledgerflow.executors.threads import failed_outcome

_STATE: Any = None


def _init_process(env: WorkerEnv) -> None:
    from ledgerflow.engine.worker import WorkerState

    global _STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _STATE = WorkerState(env)


class _Pickled:
    """A result pickled in the worker (so an unpicklable one fails there, by name)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _run_in_process(job: Job) -> Outcome:
    from ledgerflow.engine.worker import run_job
    from ledgerflow.errors import SerializationError

    outcome = run_job(job, _STATE, worker_label())
    if outcome.error is None:
        try:
            outcome.value = _Pickled(pickle.dumps(outcome.value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:
            kind = type(outcome.value)
            error = SerializationError(
                f"task {job.task.fullname} returned a value of type "
                f"{kind.__module__}.{kind.__qualname__} that cannot be serialised: {exc}"
            )
            outcome.value = None
            name = "ledgerflow.errors.SerializationError"
            outcome.error = ErrorInfo(name, str(error), str(error))
    return outcome


class ProcessExecutor(Executor):
    """A :class:`~concurrent.futures.ProcessPoolExecutor` (``fork`` on Linux)."""

    name = "processes"

    @property
    def capacity(self) -> int:
        return self.workers * 2

    def start(self, env: WorkerEnv) -> None:
        self._env = env
        self._futures: dict[Future[Any], Job] = {}
        self._pool = self._make_pool()

    def _make_pool(self) -> ProcessPoolExecutor:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_init_process,
            initargs=(self._env,),
        )

    def submit(self, job: Job) -> None:
        try:
            future = self._pool.submit(_run_in_process, job)
        except BrokenProcessPool:
            self._pool = self._make_pool()
            future = self._pool.submit(_run_in_process, job)
        self._futures[future] = job

    def _result(self, future: Future[Any], job: Job) -> Outcome:
        try:
            outcome: Outcome = future.result()
        except BrokenProcessPool as exc:
            return failed_outcome(job, exc, "a worker process died while running it")
        except Exception as exc:
            return failed_outcome(job, exc, "it could not be sent to or from its worker process")
        if isinstance(outcome.value, _Pickled):
            outcome.value = pickle.loads(outcome.value.data)
        return outcome

    def collect(self, timeout: float) -> list[Outcome]:
        if not self._futures:
            return []
        done, _ = wait(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
        outcomes = [self._result(future, self._futures.pop(future)) for future in done]
        if getattr(self._pool, "_broken", False):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._make_pool()
        return outcomes

    def take_finished(self) -> list[Outcome]:
        done = [f for f in self._futures if f.done() and not f.cancelled()]
        return [self._result(f, self._futures.pop(f)) for f in done]

    def shutdown(self, *, cancel: bool = False) -> None:
        if cancel:
            processes = getattr(self._pool, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
        self._futures.clear()


EXECUTOR = ProcessExecutor
