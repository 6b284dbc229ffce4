"""The executor contract: jobs, outcomes, the worker environment and the lazy registry.

An executor only computes: the scheduler hands it :class:`Job` s (a task and concrete
arguments) and collects :class:`Outcome` s. The implementations live in
:mod:`ledgerflow.executors`, one module per name in
:data:`~ledgerflow.config.settings.EXECUTOR_KINDS` (the one list the configuration check,
the command line and this registry read); each is imported only when used, so optional
dependencies load only for the executor that needs them.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledgerflow.config.settings import EXECUTOR_KINDS
from ledgerflow.errors import UsageError

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.engine.context import LogEntry
    from ledgerflow.engine.task import Task


@dataclass(slots=True)
class Job:
    """One attempt of a task call with concrete arguments."""

    id: str  # the task run id
    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(slots=True)
class ErrorInfo:
    type: str
    message: str
    traceback: str


@dataclass(slots=True)
class Outcome:
    """What came of a job: its returned value or the exception it raised."""

    job_id: str
    value: Any = None
    error: ErrorInfo | None = None
    started_at: float = 0.0  # epoch seconds
    duration: float = 0.0
    worker: str = ""
    logs: list[LogEntry] = field(default_factory=list)
    #: rows the task committed through its session: (bind, table, primary key JSON or None)
    written: list[tuple[str, str, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerEnv:
    """What workers need to build a task's context: plain data, safe to send to a process."""

    settings: Settings
    run_id: str
    args: dict[str, Any]


class Executor(ABC):
    """Runs jobs. The scheduler calls :meth:`start`, then :meth:`submit` / :meth:`collect`
    in a loop, then :meth:`shutdown`."""

    name = "executor"
    #: Whether the executor calls :attr:`on_job_start` when a job really starts; otherwise
    #: a submitted job counts as running.
    reports_start = False
    #: Whether jobs may carry :class:`~ledgerflow.engine.node.StoredResult` arguments (a
    #: result a worker stored itself), which the executor's workers read from the value
    #: store; otherwise the run's process reads them before it submits the job.
    accepts_stored_results = False
    #: Set by the scheduler: called (in the scheduler's thread) just before a job starts,
    #: by executors that run jobs in the scheduler's own thread.
    on_job_start: Callable[[Job], None] | None = None
    #: Set by the scheduler: a context that in-process executors enter while a task's own
    #: code runs (the scheduler is idle then, and its heartbeat may flush the ledger).
    while_task_runs: Callable[[], AbstractContextManager[None]] | None = None

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise UsageError(f"workers must be >= 1 (got {workers})")
        self.workers = workers or self.default_workers()

    def default_workers(self) -> int:
        return os.cpu_count() or 1

    def start(self, env: WorkerEnv) -> None:
        """Prepare workers for a run."""

    @property
    def capacity(self) -> int:
        """How many jobs the scheduler should keep submitted at once."""
        return self.workers * 4

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Queue a job."""

    @abstractmethod
    def collect(self, timeout: float) -> list[Outcome]:
        """Outcomes of finished jobs, waiting up to ``timeout`` seconds for at least one."""

    def take_finished(self) -> list[Outcome]:
        """Outcomes finished but not yet collected (used after an interruption)."""
        return []

    @abstractmethod
    def shutdown(self, *, cancel: bool = False) -> None:
        """Stop the workers; ``cancel`` drops queued jobs and stops running ones if possible."""


def executor_module(name: str) -> str:
    """The module implementing the executor ``name`` (it defines ``EXECUTOR``)."""
    return f"ledgerflow.executors.{name}"


def executor_class(name: str) -> type[Executor]:
    """The executor class for a name of :data:`~ledgerflow.config.settings.EXECUTOR_KINDS`."""
    if name not in EXECUTOR_KINDS:
        known = ", ".join(EXECUTOR_KINDS)
        raise UsageError(f"unknown executor '{name}'", hint=f"known executors: {known}")
    module = importlib.import_module(executor_module(name))
    cls: type[Executor] = module.EXECUTOR
    return cls


def get_executor(name: str | Executor | None, workers: int | None = None) -> Executor:
    """An executor instance from a name (or an instance, returned as is)."""
    if isinstance(name, Executor):
        return name
    return executor_class(name or "local")(workers=workers)


def worker_label(thread: bool = False) -> str:
    import socket
    import threading

    label = f"{socket.gethostname()}:{os.getpid()}"
    if thread:
        label = f"{label}:{threading.current_thread().name}"
    return label
