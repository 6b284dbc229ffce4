"""``ledgerflow.context``: what a task sees of the run it belongs to.

Each task call gets a :class:`TaskContext` for the time it runs (per thread, so the
``threads`` executor works). ``context.session`` is opened on first use and is committed
when the task returns, rolled back when it raises. Outside a task, every attribute raises
:class:`~ledgerflow.errors.ContextError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ledgerflow.engine.output import RECORDED, LogEntry, TaskOutput
from ledgerflow.errors import ContextError

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.db import Database, Helpers, RoutingSession
    from ledgerflow.db.tracking import WriteTracker, WrittenRow


class TaskLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose records are kept with the task run (and passed on to ``logging``)."""

    def __init__(self, name: str, output: TaskOutput) -> None:
        super().__init__(logging.getLogger(name), {})
        self.output = output

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        try:
            message = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            message = f"{msg} {args}"
        if kwargs.get("exc_info"):
            import traceback

            message = f"{message}\n{traceback.format_exc().rstrip()}"
        self.output.add(logging.getLevelName(level), self.logger.name, message)
        if self.logger.isEnabledFor(level):
            kwargs["extra"] = {**(kwargs.get("extra") or {}), RECORDED: True}
            self.logger.log(level, msg, *args, **kwargs)


class RunArgs(dict[str, Any]):
    """The entry task's arguments: a ``dict`` whose keys also read as attributes
    (``context.args["multiplier"]`` or ``context.args.multiplier``, as Outflow's tasks do)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"the run's entry task has no argument '{name}' (it has: "
                f"{', '.join(sorted(self)) or 'none'})"
            ) from None


class TaskContext:
    """The state of one running task call."""

    __slots__ = (
        "_database",
        "_helpers",
        "_logger",
        "_session",
        "_tracker",
        "args",
        "config",
        "log_records",
        "output",
        "run_id",
        "task_name",
        "task_run_id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        settings: Settings,
        run_id: str,
        args: dict[str, Any],
        task_name: str,
        task_run_id: str,
        database: Callable[[], Database] | None,
    ) -> None:
        self.config = settings
        self.run_id = run_id
        self.args = RunArgs(args)
        self.task_name = task_name
        self.task_run_id = task_run_id
        self.log_records: list[LogEntry] = []
        logs = settings.logs
        self.output = TaskOutput(self.log_records, logs.max_bytes, logs.echo)
        self._logger: TaskLogger | None = None
        self._database = database
        self._session: RoutingSession | None = None
        self._helpers: Helpers | None = None
        self._tracker: WriteTracker | None = None

    @property
    def logger(self) -> TaskLogger:
        if self._logger is None:
            self._logger = TaskLogger(f"ledgerflow.task.{self.task_name}", self.output)
        return self._logger

    @property
    def session(self) -> RoutingSession:
        if self._session is None:
            if self._database is None:
                raise ContextError("this run has no database to open a session on")
            from ledgerflow.db.tracking import TrackedSession

            session = TrackedSession(self._database())  # what it writes keeps the cache honest
            self._session, self._tracker = session, session.tracker
        return self._session

    @property
    def db(self) -> Helpers:
        if self._helpers is None:
            from ledgerflow.db import Helpers

            self._helpers = Helpers(self.session)
        return self._helpers

    def written(self) -> list[WrittenRow]:
        """The rows the task's session committed: ``(bind, table, primary key JSON)``."""
        return self._tracker.rows() if self._tracker is not None else []

    def close(self, success: bool) -> None:
        """Commit (on success) or roll back the session, then close it."""
        session, self._session, self._helpers = self._session, None, None
        if session is None:
            return
        try:
            if success:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()


_current: ContextVar[TaskContext | None] = ContextVar("ledgerflow_task_context", default=None)


def current() -> TaskContext | None:
    return _current.get()


def current_output() -> TaskOutput | None:
    """The log of the running task (None outside tasks)."""
    ctx = _current.get()
    return ctx.output if ctx is not None else None


def activate(ctx: TaskContext | None) -> Any:
    return _current.set(ctx)


def deactivate(token: Any) -> None:
    _current.reset(token)


_OUTSIDE = (
    "ledgerflow.context.{name} is only available inside a task while a run executes it"
)
_HINT = "run the task with ledgerflow.run(task(...)) or `ledgerflow run MODULE:TASK`"


class ContextProxy:
    """The ``context`` object: forwards to the running task's :class:`TaskContext`."""

    __slots__ = ()

    def _get(self, name: str) -> TaskContext:
        ctx = _current.get()
        if ctx is None:
            raise ContextError(_OUTSIDE.format(name=name), hint=_HINT)
        return ctx

    @property
    def session(self) -> RoutingSession:
        return self._get("session").session

    @property
    def db(self) -> Helpers:
        return self._get("db").db

    @property
    def config(self) -> Settings:
        return self._get("config").config

    @property
    def run_id(self) -> str:
        return self._get("run_id").run_id

    @property
    def args(self) -> RunArgs:
        return self._get("args").args

    @property
    def logger(self) -> TaskLogger:
        return self._get("logger").logger

    @property
    def task_run_id(self) -> str:
        return self._get("task_run_id").task_run_id

    @property
    def active(self) -> bool:
        """Whether code runs inside a task (never raises)."""
        return _current.get() is not None

    def __repr__(self) -> str:
        ctx = _current.get()
        if ctx is None:
            return "<ledgerflow.context (outside a run)>"
        return f"<ledgerflow.context run={ctx.run_id} task={ctx.task_name}>"


context = ContextProxy()
