"""The ``local`` executor: jobs run one after another in the scheduler's own thread."""

from __future__ import annotations

import time
from collections import deque
from contextlib import nullcontext

from ledgerflow.engine.executor import Executor, Job, Outcome, WorkerEnv, worker_label

#: How long :meth:`LocalExecutor.collect` runs jobs before handing outcomes back.
BATCH_SECONDS = 0.05


class LocalExecutor(Executor):
    """In-process execution: no pickling, tasks see the scheduler's modules and objects."""

    name = "local"
    reports_start = True

    def default_workers(self) -> int:
        return 1

    @property
    def capacity(self) -> int:
        return 1 << 30

    def start(self, env: WorkerEnv) -> None:
        from ledgerflow.engine.worker import WorkerState

        self._queue: deque[Job] = deque()
        self._finished: list[Outcome] = []
        self._state = WorkerState(env)
        self._label = worker_label()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def collect(self, timeout: float) -> list[Outcome]:
        from ledgerflow.engine.worker import run_job

        queue, finished, state, label = self._queue, self._finished, self._state, self._label
        hook = self.on_job_start
        idle = self.while_task_runs or nullcontext
        deadline = time.perf_counter() + BATCH_SECONDS
        while queue:
            job = queue.popleft()
            if hook is not None:
                hook(job)
            with idle():
                outcome = run_job(job, state, label)
            finished.append(outcome)
            if time.perf_counter() > deadline:
                break
        self._finished = []
        return finished

    def take_finished(self) -> list[Outcome]:
        finished, self._finished = self._finished, []
        return finished

    def shutdown(self, *, cancel: bool = False) -> None:
        self._queue.clear()
        self._state.close()


EXECUTOR = LocalExecutor
