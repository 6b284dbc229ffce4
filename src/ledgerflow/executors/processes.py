"""The ``processes`` executor: jobs run in worker processes (all cores by default).

Worker processes receive the run's settings (plain data) and open their own database
engines when a task uses ``context.session``. Results come back pickled; a result that
cannot be pickled fails its task with a message that names the task and the type.
Each worker has a pipe of its own and runs one job at a time, so the executor knows which
process runs which job: a job past its task's ``timeout=`` is failed with
:class:`~ledgerflow.errors.TaskTimeoutError` and its worker killed and replaced, and a
worker that dies fails only the job it was running; the other workers go on.
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
import socket
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
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


def _serve(conn: Connection, env: WorkerEnv, parent: int) -> None:
    """A worker process: run the jobs that come through ``conn`` one at a time, answering
    each with its pickled outcome, until an empty message (or the pipe's end)."""
    _init_process(env, parent)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not data:
            return
        try:
            job: Job = pickle.loads(data)
        except Exception as exc:  # the task's module could not be imported here
            message = f"the job could not be unpacked in its worker process: {type(exc).__name__}: {exc}"
            outcome = Outcome("", error=ErrorInfo(type(exc).__name__, message, message))
        else:
            if job.task.timeout is not None:  # its clock starts now, after the unpacking
                conn.send_bytes(_STARTED)
            outcome = _run_in_process(job)
        try:
            answer = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # e.g. a log record's arguments
            message = f"its outcome could not be sent back from its worker process: {exc}"
            answer = pickle.dumps(Outcome(outcome.job_id, error=ErrorInfo(type(exc).__name__, message, message)))
        try:
            conn.send_bytes(answer)
        except (EOFError, OSError):
            return


#: What a worker sends when the code of a job with a timeout starts (outcomes are pickles).
_STARTED = b"started"


class _Worker:
    """One worker process, its end of the pipe and the job it runs (None when idle)."""

    __slots__ = ("conn", "job", "process", "started_at", "started_wall")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.job: Job | None = None
        self.started_at: float | None = None  # monotonic time a timed job's code started
        self.started_wall = 0.0

    @property
    def label(self) -> str:
        return f"{socket.gethostname()}:{self.process.pid}"

    def deadline(self) -> float | None:
        limit = self.job.task.timeout if self.job is not None else None
        return None if limit is None or self.started_at is None else self.started_at + limit


class ProcessExecutor(Executor):
    """Worker processes (``fork`` on Linux), each fed one job at a time through its pipe."""

    name = "processes"

    @property
    def capacity(self) -> int:
        return self.workers * 2

    def start(self, env: WorkerEnv) -> None:
        self._env = env
        self._context: Any = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self._waiting: deque[tuple[Job, bytes]] = deque()
        self._ready: list[Outcome] = []  # outcomes made here (a job that could not be sent)
        self._pool: list[_Worker] = []
        for _ in range(self.workers):
            self._pool.append(self._spawn())

    def _spawn(self) -> _Worker:
        mine, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_serve, args=(theirs, self._env, os.getpid()), name="ledgerflow-worker",
        )  # not daemonic, so that a task may start processes of its own
        process.start()
        theirs.close()
        return _Worker(process, mine)

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker (it may be running a job) and put a fresh one in its place."""
        _stop_workers([worker.process])
        worker.conn.close()
        self._pool[self._pool.index(worker)] = self._spawn()

    def submit(self, job: Job) -> None:
        try:
            data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            self._ready.append(failed_outcome(job, exc, "it could not be sent to its worker process"))
            return
        self._waiting.append((job, data))
        self._hand_out()

    def _hand_out(self) -> None:
        for worker in self._pool:
            if not self._waiting:
                return
            if worker.job is None:
                job, data = self._waiting.popleft()
                worker.job, worker.started_at = job, None
                try:
                    worker.conn.send_bytes(data)
                except OSError:  # it died while idle: replaced; the job waits for the next turn
                    worker.job = None
                    self._waiting.appendleft((job, data))
                    self._replace(worker)

    def _busy(self) -> list[_Worker]:
        return [w for w in self._pool if w.job is not None]

    def collect(self, timeout: float) -> list[Outcome]:
        outcomes, self._ready = self._ready, []
        busy = self._busy()
        if not busy:
            return outcomes
        deadlines = [d for d in map(_Worker.deadline, busy) if d is not None]
        wait_for = 0.0 if outcomes else timeout
        if deadlines:
            wait_for = max(0.0, min(wait_for, min(deadlines) - time.monotonic()))
        outcomes += self._gather(busy, wait_for)
        outcomes += self._expire()
        self._hand_out()
        return outcomes

    def _gather(self, busy: list[_Worker], timeout: float) -> list[Outcome]:
        """Outcomes of the workers that answered (or died) within ``timeout`` seconds."""
        by_handle: dict[Any, _Worker] = {}
        for worker in busy:
            by_handle[worker.conn] = worker
            by_handle[worker.process.sentinel] = worker
        outcomes = []
        answered: set[int] = set()
        for handle in wait(list(by_handle), timeout):
            worker = by_handle[handle]
            if id(worker) in answered or worker.job is None:
                continue
            answered.add(id(worker))
            outcome = self._receive(worker, worker.job)
            if outcome is not None:
                worker.job = None
                outcomes.append(outcome)
        return outcomes

    def _receive(self, worker: _Worker, job: Job) -> Outcome | None:
        """The job's outcome, or None when the worker only said that its code started."""
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError) as exc:  # the process died while running the job
            worker.job = None
            self._replace(worker)
            return failed_outcome(job, exc, "a worker process died while running it")
        if data == _STARTED:
            worker.started_at, worker.started_wall = time.monotonic(), time.time()
            return None
        try:
            outcome: Outcome = pickle.loads(data)
        except Exception as exc:
            return failed_outcome(job, exc, "its outcome could not be sent back from its worker process")
        outcome.job_id = job.id
        if isinstance(outcome.value, _Pickled):
            outcome.value = pickle.loads(outcome.value.data)
        return outcome

    def _expire(self) -> list[Outcome]:
        """Fail the jobs past their task's timeout, replacing the workers that ran them."""
        from ledgerflow.engine.worker import timeout_outcome

        now = time.monotonic()
        outcomes = []
        for worker in self._busy():
            deadline = worker.deadline()
            if deadline is None or now < deadline or worker.job is None:
                continue
            job, worker.job = worker.job, None
            elapsed = now - (worker.started_at or now)
            outcomes.append(timeout_outcome(job, worker.started_wall, elapsed, worker.label))
            self._replace(worker)
        return outcomes

    def take_finished(self) -> list[Outcome]:
        outcomes, self._ready = self._ready, []
        busy = self._busy()
        return outcomes + (self._gather(busy, 0) if busy else [])

    def shutdown(self, *, cancel: bool = False) -> None:
        self._waiting.clear()
        processes = [w.process for w in self._pool]
        if not cancel:
            for worker in self._pool:
                try:
                    worker.conn.send_bytes(b"")
                except OSError:
                    pass
            for process in processes:
                process.join()
        _stop_workers(processes)
        for worker in self._pool:
            worker.conn.close()
        self._pool = []


def _stop_workers(processes: list[Any]) -> None:
    """Kill every worker (they ignore SIGTERM) and reap it."""
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(2.0)


EXECUTOR = ProcessExecutor
