"""The ``threads`` and ``processes`` executors, on :mod:`concurrent.futures` pools.

Worker processes receive the run's settings (plain data) and open their own database
engines when a task uses ``context.session``. Results come back pickled; a result that
cannot be pickled fails its task with a message that names the task and the type.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ledgerflow.executors.base import ErrorInfo, Executor, Job, Outcome, WorkerEnv, worker_label


class _PoolExecutor(Executor):
    def start(self, env: WorkerEnv) -> None:
        self._env = env
        self._futures: dict[Future[Any], Job] = {}
        self._pool = self._make_pool()

    def _make_pool(self) -> Any:
        raise NotImplementedError

    def _target(self) -> Any:
        """The function a worker calls with a job."""
        raise NotImplementedError

    def _result(self, future: Future[Any], job: Job) -> Outcome:
        try:
            return self._unpack(future.result(), job)
        except BrokenProcessPool as exc:
            return _failed(job, exc, "a worker process died while running it")
        except Exception as exc:
            return _failed(job, exc, "it could not be sent to or from its worker")

    def _unpack(self, result: Any, job: Job) -> Outcome:
        return result  # type: ignore[no-any-return]

    @property
    def capacity(self) -> int:
        return self.workers * 2

    def submit(self, job: Job) -> None:
        run = self._target()
        try:
            future = self._pool.submit(run, job)
        except BrokenProcessPool:
            self._pool = self._make_pool()
            future = self._pool.submit(run, job)
        self._futures[future] = job

    def collect(self, timeout: float) -> list[Outcome]:
        if not self._futures:
            return []
        done, _ = wait(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
        outcomes = [self._result(future, self._futures.pop(future)) for future in done]
        return outcomes

    def take_finished(self) -> list[Outcome]:
        done = [f for f in self._futures if f.done() and not f.cancelled()]
        return [self._result(f, self._futures.pop(f)) for f in done]

    def shutdown(self, *, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
        self._futures.clear()


def _failed(job: Job, exc: BaseException, why: str) -> Outcome:
    from ledgerflow.engine.worker import exception_name

    name = job.task.fullname
    message = f"task {name} failed because {why}: {exception_name(exc)}: {exc}"
    return Outcome(job.id, error=ErrorInfo(exception_name(exc), message, message))


class ThreadExecutor(_PoolExecutor):
    """Jobs run in a pool of threads of the scheduler's process."""

    name = "threads"

    def _make_pool(self) -> ThreadPoolExecutor:
        from ledgerflow.engine.worker import WorkerState

        self._state = WorkerState(self._env)
        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ledgerflow")

    def _target(self) -> Any:
        return self._run

    def _run(self, job: Job) -> Outcome:
        from ledgerflow.engine.worker import run_job

        return run_job(job, self._state, worker_label(thread=True))

    def shutdown(self, *, cancel: bool = False) -> None:
        super().shutdown(cancel=cancel)
        self._state.close()


_STATE: Any = None


def _init_process(env: WorkerEnv) -> None:
    from ledgerflow.engine.worker import WorkerState

    global _STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler decides what Ctrl-C does
    _STATE = WorkerState(env)


class _Pickled:
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
            outcome.error = ErrorInfo("ledgerflow.errors.SerializationError", str(error), str(error))
    return outcome


class ProcessExecutor(_PoolExecutor):
    """Jobs run in worker processes (all cores by default)."""

    name = "processes"

    def _make_pool(self) -> ProcessPoolExecutor:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_init_process,
            initargs=(self._env,),
        )

    def _target(self) -> Any:
        return _run_in_process  # a module-level function: picklable

    def _unpack(self, result: Any, job: Job) -> Outcome:
        if isinstance(result.value, _Pickled):
            result.value = pickle.loads(result.value.data)
        return result  # type: ignore[no-any-return]

    def collect(self, timeout: float) -> list[Outcome]:
        outcomes = super().collect(timeout)
        if getattr(self._pool, "_broken", False):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._make_pool()
        return outcomes

    def shutdown(self, *, cancel: bool = False) -> None:
        if cancel:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        super().shutdown(cancel=cancel)
