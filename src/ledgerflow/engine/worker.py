"""Running one job where an executor puts it (in-process, a thread or a worker process)."""

from __future__ import annotations

import threading
import time
import traceback
from typing import TYPE_CHECKING

from ledgerflow.engine.context import TaskContext, activate, current_output, deactivate
from ledgerflow.engine.executor import ErrorInfo, Job, Outcome, WorkerEnv
from ledgerflow.engine.output import start_capture, stop_capture

if TYPE_CHECKING:
    from ledgerflow.db import Database


class WorkerState:
    """A worker's run environment and its database engines, opened on first use.

    While it is open, what tasks print or log goes to their task runs' logs.
    """

    def __init__(self, env: WorkerEnv, database: Database | None = None) -> None:
        self.env = env
        self._database = database
        self._owns_database = database is None
        self._lock = threading.Lock()
        start_capture(current_output)
        self._capturing = True

    def database(self) -> Database:
        if self._database is None:
            with self._lock:
                if self._database is None:
                    from ledgerflow.db import Database

                    self._database = Database(self.env.settings)
        return self._database

    def close(self) -> None:
        if self._capturing:
            self._capturing = False
            stop_capture()
        if self._database is not None and self._owns_database:
            self._database.dispose()
            self._database = None


def exception_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def error_info(exc: BaseException, skip_frames: int = 1) -> ErrorInfo:
    """Type, message and traceback of an exception, without the engine's own frames."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return ErrorInfo(exception_name(exc), str(exc), text)


def run_job(job: Job, state: WorkerState, worker: str) -> Outcome:
    """Call the task's function inside its context; never raises but for KeyboardInterrupt."""
    env = state.env
    ctx = TaskContext(
        settings=env.settings,
        run_id=env.run_id,
        args=env.args,
        task_name=job.task.fullname,
        task_run_id=job.id,
        database=state.database,
    )
    outcome = Outcome(job.id, worker=worker, logs=ctx.log_records)
    outcome.started_at = time.time()
    start = time.perf_counter()
    token = activate(ctx)
    try:
        try:
            outcome.value = job.task.func(*job.args, **job.kwargs)
        except KeyboardInterrupt:
            _close_quietly(ctx)
            raise
        except BaseException as exc:  # a task's SystemExit is a failure of that task too
            outcome.error = error_info(exc)
            _close_quietly(ctx)
        else:
            try:
                ctx.close(success=True)
                outcome.written = ctx.written()
            except Exception as exc:
                outcome.error = error_info(exc, skip_frames=0)
                outcome.value = None
    finally:
        deactivate(token)
        outcome.duration = time.perf_counter() - start
        ctx.output.finish()
    limit = job.task.timeout
    if limit is not None and outcome.duration > limit:  # it could not be stopped in time
        outcome.value = None
        outcome.written = []
        outcome.error = timeout_error(job, outcome.duration, stopped=False)
    return outcome


def timeout_error(job: Job, elapsed: float, *, stopped: bool) -> ErrorInfo:
    """The failure of a task run that went past its ``timeout=``: stopped by its executor
    (``stopped``), or only noticed when it returned (an executor that cannot stop it)."""
    from ledgerflow.errors import TaskTimeoutError

    limit = job.task.timeout
    if stopped:
        what = (f"task {job.task.fullname} did not finish within its timeout of {limit:g} s: "
                "its worker was stopped and replaced")
    else:
        what = (f"task {job.task.fullname} took {elapsed:.2f} s, over its timeout of {limit:g} s "
                "(its result is discarded)")
    error = TaskTimeoutError(what, hint="raise timeout= on @task if the task needs longer")
    return ErrorInfo(exception_name(error), str(error), str(error))


def timeout_outcome(job: Job, started_at: float, elapsed: float, worker: str) -> Outcome:
    """The outcome of a job its executor stopped at its ``timeout=``."""
    return Outcome(job.id, error=timeout_error(job, elapsed, stopped=True), started_at=started_at,
                   duration=elapsed, worker=worker)


def _close_quietly(ctx: TaskContext) -> None:
    try:
        ctx.close(success=False)
    except Exception:  # the task's own exception is what matters
        pass
