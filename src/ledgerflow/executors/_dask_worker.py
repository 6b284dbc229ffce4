"""The worker side of the ``dask`` executor (imported only where dask.distributed is installed).

A run's environment reaches every worker, present and future (restarted after a crash,
or started later by an adaptive batch cluster), through a worker plugin registered for the
run; jobs then carry only themselves. The plugin puts the scheduler's module paths on
``sys.path`` (those that exist on the worker) before any job is unpickled, so that a
task's module imports on the worker as it does where the run started, and makes the
project directory the worker's working directory when it exists there (a shared file
system), as it is for the other executors.

A result whose pickled size is above the run's ``by_reference_bytes`` does not travel back
through the Dask scheduler: the worker hashes, encodes and writes it to the value
store (``values.store``, which must be reachable from the workers) as the run's process
would have, and returns a :class:`~ledgerflow.engine.node.StoredResult`, the ledger rows
to record (with the digest of the bytes, which the run's process checks when it reads
them back).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import WorkerPlugin

from ledgerflow.engine.executor import ErrorInfo, Job, Outcome, WorkerEnv, worker_label

if TYPE_CHECKING:
    from ledgerflow.engine.node import StoredResult
    from ledgerflow.engine.worker import WorkerState
    from ledgerflow.values import ValueStore

#: The event a worker sends when it starts a job: a job lost with its worker before it
#: started there is sent again, once, instead of failing with the job that killed it.
STARTED_TOPIC = "ledgerflow-job-started"
#: The event a worker sends when the code of a job whose task has a ``timeout=`` starts
#: (after the job was unpacked): the job's clock starts then.
TIMED_TOPIC = "ledgerflow-timed-job-running"
_STATES: dict[str, WorkerState] = {}
_BY_REFERENCE: dict[str, ByReference] = {}
_LOCK = threading.Lock()


def module_paths() -> tuple[str, ...]:
    """The entries of ``sys.path`` that hold a project's modules (not Python's, nor installed
    packages, which each worker has its own of)."""
    installed = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        if "site-packages" in path or "dist-packages" in path:
            continue
        if any(path == p or path.startswith(p + os.sep) for p in installed):
            continue
        paths.append(path)
    return tuple(dict.fromkeys(paths))


def processing_on(key: str, dask_scheduler: Any = None) -> str | None:
    """On the scheduler: the address of the worker running the task ``key`` (None if none)."""
    task = dask_scheduler.tasks.get(key) if dask_scheduler is not None else None
    worker = getattr(task, "processing_on", None)
    return None if worker is None else str(worker.address)


async def end_worker_process() -> None:
    """On a worker, from the run's client: end this process now (a task went past its
    timeout and cannot be stopped otherwise); the worker's nanny starts a new one."""
    os.kill(os.getpid(), signal.SIGKILL)


def plugin_name(run_id: str) -> str:
    return f"ledgerflow-run-{run_id}"


class RunPlugin(WorkerPlugin):  # type: ignore[misc]
    """Sets a worker up for one run, and closes the run's database engines at its end."""

    idempotent = True

    def __init__(
        self,
        env: WorkerEnv,
        paths: tuple[str, ...],
        by_reference_bytes: int | None = None,
    ) -> None:
        self.env = env
        self.paths = paths
        self.by_reference_bytes = by_reference_bytes

    def setup(self, worker: Any) -> None:
        from ledgerflow.engine.loading import extend_sys_path
        from ledgerflow.engine.worker import WorkerState
        from ledgerflow.engine.workspace import project_directory

        extend_sys_path([p for p in self.paths if os.path.isdir(p)])
        directory = project_directory(self.env.settings)
        if directory is not None and directory.is_dir():  # tasks run in the project directory
            os.chdir(directory)
        with _LOCK:
            if self.env.run_id not in _STATES:
                _STATES[self.env.run_id] = WorkerState(self.env)
            if self.by_reference_bytes is not None:
                _BY_REFERENCE[self.env.run_id] = ByReference(self.by_reference_bytes, self.env)

    def teardown(self, worker: Any) -> None:
        with _LOCK:
            state = _STATES.pop(self.env.run_id, None)
            _BY_REFERENCE.pop(self.env.run_id, None)
        if state is not None:
            state.close()


#: The environment variable naming the batch job a worker runs in, per batch system.
BATCH_JOB_VARIABLES = (
    ("slurm", "SLURM_JOB_ID"),
    ("pbs", "PBS_JOBID"),
    ("lsf", "LSB_JOBID"),
    ("sge", "JOB_ID"),  # with SGE_ROOT set
)


def batch_job() -> str:
    """`` slurm-job:123`` when the worker runs in a batch job, else ``""``."""
    for kind, variable in BATCH_JOB_VARIABLES:
        value = os.environ.get(variable)
        if value and (kind != "sge" or "SGE_ROOT" in os.environ):
            return f" {kind}-job:{value}"
    return ""


class ByReference:
    """How one run's large results go by reference from this worker: the size above which
    they do, and the value store (opened on first use)."""

    def __init__(self, limit: int, env: WorkerEnv) -> None:
        self.limit = limit
        self.settings = env.settings
        self._store: ValueStore | None = None

    def store(self, value: Any) -> StoredResult:
        from ledgerflow.engine.valuing import store_result

        return store_result(value, self.settings, self.value_store())

    def load(self, result: StoredResult) -> Any:
        """A result stored by a worker, read back (its bytes checked)."""
        from ledgerflow.engine.valuing import Values

        values = Values(self.settings, store=self.value_store())
        return values.load_stored(result)

    def value_store(self) -> ValueStore:
        from ledgerflow.values import open_store

        if self._store is None:
            self._store = open_store(self.settings)
        return self._store


class _Discard:
    """A file that forgets what is written to it: pickling into it checks a value and
    measures it."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def _failed(job_id: str, label: str, exc: BaseException, what: str) -> Outcome:
    from ledgerflow.engine.worker import exception_name

    message = f"{what} on Dask worker {label}: {exception_name(exc)}: {exc}"
    return Outcome(job_id, error=ErrorInfo(exception_name(exc), message, message), worker=label)


def run_on_worker(run_id: str, job_id: str, data: bytes) -> Outcome:
    """The function Dask runs: unpickle the job, run it, check that its value can travel."""
    from distributed import get_worker

    from ledgerflow.engine.worker import run_job

    worker = get_worker()
    worker.log_event(STARTED_TOPIC, job_id)  # a job lost before this is sent again
    label = worker_label(thread=worker.state.nthreads > 1) + batch_job()
    state = _STATES.get(run_id)
    if state is None:
        error = RuntimeError(f"the worker was not set up for run {run_id}")
        return _failed(job_id, label, error, "the job could not start")
    try:
        job: Job = pickle.loads(data)
    except Exception as exc:
        what = (
            "the job could not be unpacked (the task's module must be importable on the "
            "worker: a shared file system, an installed package, or Client.upload_file)"
        )
        return _failed(job_id, label, exc, what)
    try:
        _read_stored_arguments(job, _BY_REFERENCE.get(run_id))
    except Exception as exc:
        return _failed(job_id, label, exc, "an argument could not be read from the value store")
    if job.task.timeout is not None:
        worker.log_event(TIMED_TOPIC, job_id)
    outcome = run_job(job, state, label)
    if outcome.error is None:
        sink = _Discard()
        try:  # a value that cannot travel fails here, by name (Dask then sends it once)
            pickle.Pickler(sink, protocol=pickle.HIGHEST_PROTOCOL).dump(outcome.value)
        except Exception as exc:
            kind = type(outcome.value)
            message = (
                f"task {job.task.fullname} returned a value of type "
                f"{kind.__module__}.{kind.__qualname__} that cannot be serialised: {exc}"
            )
            outcome.value = None
            outcome.error = ErrorInfo("ledgerflow.errors.SerializationError", message, message)
            return outcome
        by_reference = _BY_REFERENCE.get(run_id)
        if by_reference is not None and sink.size > by_reference.limit:
            _send_by_reference(outcome, by_reference, job)
    return outcome


def _read_stored_arguments(job: Job, by_reference: ByReference | None) -> None:
    """Replace the arguments that are results a worker stored by their values."""
    from ledgerflow.engine.node import StoredResult

    stored = [a for a in (*job.args, *job.kwargs.values()) if type(a) is StoredResult]
    if not stored:
        return
    if by_reference is None:
        raise RuntimeError("the worker was not given the value store of the run")
    job.args = tuple(by_reference.load(a) if type(a) is StoredResult else a for a in job.args)
    job.kwargs = {
        k: by_reference.load(v) if type(v) is StoredResult else v for k, v in job.kwargs.items()
    }


def _send_by_reference(outcome: Outcome, by_reference: ByReference, job: Job) -> None:
    """Replace a large value by the rows of its stored self (unless it holds calls, which
    the run's process must see)."""
    from ledgerflow.config.settings import hide_url_passwords
    from ledgerflow.engine.expr import find_calls
    from ledgerflow.engine.worker import error_info

    if find_calls(outcome.value):
        return
    try:
        outcome.value = by_reference.store(outcome.value)
    except Exception as exc:
        info = error_info(exc, skip_frames=0)
        message = (
            f"task {job.task.fullname} returned a large value that its worker could not "
            f"write to the value store ({hide_url_passwords(str(by_reference.settings.values.store))}): "
            f"{info.type}: {info.message}; the workers must be able to write values.store, "
            f"or raise executor.by_reference_bytes"
        )
        outcome.value = None
        outcome.error = ErrorInfo(info.type, message, info.traceback)
