"""The ``processes`` executor: jobs run in worker processes (all cores by default).

Worker processes receive the run's settings (plain data) and open their own database
engines when a task uses ``context.session``. Results come back pickled; a result that
cannot be pickled fails its task with a message that names the task and the type.
Workers ignore SIGINT, SIGTERM and SIGHUP (sent to the whole process group by a terminal,
``kill -- -PGID`` or a service manager): the scheduler decides, records the run
``interrupted`` and kills them (SIGKILL; their tasks' results would be discarded). Workers die with the process that started them, however
it ends (even SIGKILL): on Linux the kernel kills them (``PR_SET_PDEATHSIG``); elsewhere, and
as a second guard, a thread in each worker ends it once its parent is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ledgerflow.engine.executor import ErrorInfo, Executor, Job, Outcome, WorkerEnv, worker_label
from ledgerflow.executors.threads import failed_outcome

_STATE: Any = None
#: Seconds between two checks of the worker's watch thread that its parent is alive.
PARENT_CHECK_EVERY = 0.5
#: Whether workers ask the kernel to kill them when their parent dies (Linux only).
USE_PDEATHSIG = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1


def _die_with_parent_linux() -> bool:
    """Ask the kernel to SIGKILL this process when its parent ends; whether that worked."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """Until this process's parent changes (it died: the worker was re-parented), wait."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_EVERY)
    os.kill(os.getpid(), signal.SIGKILL)


def _init_process(env: WorkerEnv, parent: int) -> None:
    from ledgerflow.engine.worker import WorkerState

    global _STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):  # not the parent's handlers, copied by fork
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    if USE_PDEATHSIG:
        _die_with_parent_linux()
    threading.Thread(
        target=_watch_parent, args=(parent,), name="ledgerflow-parent-watch", daemon=True
    ).start()
    if os.getppid() != parent:  # the parent died before the guards were in place
        os._exit(1)
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
            initargs=(self._env, os.getpid()),
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
            _stop_workers(list((getattr(self._pool, "_processes", None) or {}).values()))
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
        self._futures.clear()


def _stop_workers(processes: list[Any]) -> None:
    """Kill every worker (they ignore SIGTERM) and reap it."""
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(2.0)


EXECUTOR = ProcessExecutor
