"""The worker side of the ``dask`` executor (imported only where dask.distributed is installed).

A run's environment reaches every worker, present and future (restarted after a crash,
or started later by an adaptive batch cluster), through a worker plugin registered for the
run; jobs then carry only themselves. The plugin puts the scheduler's module paths on
``sys.path`` (those that exist on the worker) before any job is unpickled, so that a
task's module imports on the worker as it does where the run started, and makes the
project directory the worker's working directory when it exists there (a shared file
system), as it is for the other executors.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import WorkerPlugin

from ledgerflow.engine.executor import ErrorInfo, Job, Outcome, WorkerEnv, worker_label

if TYPE_CHECKING:
    from ledgerflow.engine.worker import WorkerState

#: The event a worker sends when it starts a job: a job lost with its worker before it
#: started there is sent again, once, instead of failing with the job that killed it.
STARTED_TOPIC = "ledgerflow-job-started"
_STATES: dict[str, WorkerState] = {}
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


def plugin_name(run_id: str) -> str:
    return f"ledgerflow-run-{run_id}"


class RunPlugin(WorkerPlugin):  # type: ignore[misc]
    """Sets a worker up for one run, and closes the run's database engines at its end."""

    idempotent = True

    def __init__(self, env: WorkerEnv, paths: tuple[str, ...]) -> None:
        self.env = env
        self.paths = paths

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

    def teardown(self, worker: Any) -> None:
        with _LOCK:
            state = _STATES.pop(self.env.run_id, None)
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


class _Discard:
    """A file that forgets what is written to it: pickling into it only checks a value."""

    def write(self, data: bytes) -> int:
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
    outcome = run_job(job, state, label)
    if outcome.error is None:
        try:  # a value that cannot travel fails here, by name (Dask then sends it once)
            pickle.Pickler(_Discard(), protocol=pickle.HIGHEST_PROTOCOL).dump(outcome.value)
        except Exception as exc:
            kind = type(outcome.value)
            message = (
                f"task {job.task.fullname} returned a value of type "
                f"{kind.__module__}.{kind.__qualname__} that cannot be serialised: {exc}"
            )
            outcome.value = None
            outcome.error = ErrorInfo("ledgerflow.errors.SerializationError", message, message)
    return outcome
