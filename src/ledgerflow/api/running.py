"""Running and explaining task calls, and opening a ledger (which first marks dead runs
``interrupted``): what ``ledgerflow run`` and ``ledgerflow explain`` call.

:func:`execute` and :func:`run` are the engine's: before a run starts they check what would
otherwise fail inside it (:mod:`ledgerflow.engine.checks`), so a mistake there is one error
and no run is recorded, from the CLI and from Python alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerflow.engine import (
    Call,
    Explanation,
    Failure,
    PlanEntry,
    RunObserver,
    RunResult,
    explain,
)
from ledgerflow.engine import execute as engine_execute
from ledgerflow.engine import run as engine_run
from ledgerflow.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.db import Database
    from ledgerflow.engine.task import Task

__all__ = [
    "Explanation",
    "Failure",
    "PlanEntry",
    "RunObserver",
    "RunResult",
    "Target",
    "attempt_counts",
    "call_target",
    "execute",
    "explain",
    "load_target",
    "mark_dead_runs",
    "open_ledger",
    "preview",
    "run",
]


class _Observers:
    """Several observers seen as one: each method goes to each of them, in order."""

    def __init__(self, *observers: RunObserver) -> None:
        self.observers = observers

    def _each(self, name: str, *args: Any) -> None:
        error: Exception | None = None
        for observer in self.observers:
            try:
                getattr(observer, name)(*args)
            except Exception as exc:  # the next ones are still told; the engine logs it
                error = error or exc
        if error is not None:
            raise error

    def run_started(self, run_id: str, entry: str) -> None:
        self._each("run_started", run_id, entry)

    def counts_changed(self, counts: dict[str, int], elapsed: float) -> None:
        self._each("counts_changed", counts, elapsed)

    def task_failed(self, failure: Failure) -> None:
        self._each("task_failed", failure)

    def run_finished(self, result: RunResult) -> None:
        self._each("run_finished", result)


def _with_lineage(settings: Settings, observer: RunObserver | None) -> RunObserver | None:
    """``observer``, joined by the OpenLineage emitter when ``lineage: openlineage:`` is set."""
    config = settings.lineage.openlineage
    if config is None:
        return observer
    try:
        import openlineage.client  # noqa: F401
    except ImportError:
        raise MissingExtraError("lineage: openlineage: in the configuration", "openlineage",
                                "openlineage-python") from None
    from ledgerflow.provenance.lineage_live import LineageObserver, check_transport_type

    check_transport_type(config.transport)
    lineage = LineageObserver(settings, config)
    return lineage if observer is None else _Observers(observer, lineage)  # type: ignore[return-value]


def execute(expr: Any, *, config: Any = None, settings: Settings | None = None,
            observer: RunObserver | None = None, dry_run: bool = False,
            **options: Any) -> RunResult:
    """:func:`ledgerflow.engine.execute`, emitting the run's OpenLineage events when the
    configuration asks for them (``lineage: openlineage:``)."""
    from ledgerflow.engine.workspace import resolve_settings

    settings = resolve_settings(config, settings)
    if not dry_run:
        observer = _with_lineage(settings, observer)
    return engine_execute(expr, settings=settings, observer=observer, dry_run=dry_run, **options)


def run(expr: Any, *, config: Any = None, settings: Settings | None = None,
        observer: RunObserver | None = None, dry_run: bool = False, **options: Any) -> Any:
    """:func:`ledgerflow.engine.run`, emitting OpenLineage events like :func:`execute`."""
    from ledgerflow.engine.workspace import resolve_settings

    settings = resolve_settings(config, settings)
    if not dry_run:
        observer = _with_lineage(settings, observer)
    return engine_run(expr, settings=settings, observer=observer, dry_run=dry_run, **options)


@dataclass(frozen=True)
class Target:
    """A task named on the command line, and the project directory it was found from."""

    task: Task[Any, Any]
    root: Path | None


def load_target(target: str, *, config_path: str | Path | None = None) -> Target:
    """The task named by ``target`` (``pkg.module:task`` or ``file.py:task``).

    The project's directory (the folder of ``ledgerflow.yml``, found from ``config_path``,
    ``$LEDGERFLOW_CONFIG`` or upwards) and the working directory are put on ``sys.path``.
    """
    from ledgerflow.config import find_config
    from ledgerflow.engine.loading import load_task

    try:
        root: Path | None = find_config(config_path).parent
    except ConfigError:
        root = None
    return Target(load_task(target, root=root), root)


def call_target(
    target: str, arguments: Mapping[str, Any] | None = None, *, root: str | Path | None = None
) -> Call:
    """The lazy call ``task(**arguments)`` of a target (``pkg.module:task`` or ``file.py:task``)."""
    from ledgerflow.engine.loading import load_task

    task = load_task(target, root=root)
    return task(**dict(arguments or {}))  # type: ignore[return-value]


def preview(value: Any, limit: int = 120) -> str:
    """A short human preview of a value (a run's result)."""
    from ledgerflow.values.preview import preview as value_preview

    return value_preview(value, limit)


def attempt_counts(settings: Settings, run_id: str) -> dict[str, int]:
    """The run's task runs (attempts, retries included) by status, as ``ledgerflow log`` counts them."""
    from sqlalchemy import text

    from ledgerflow.db import Database

    database = Database(settings, read_only=True)
    try:
        with database.engine().connect() as connection:
            rows = connection.execute(
                text("SELECT status, COUNT(*) FROM lf_task_run WHERE run_id = :run GROUP BY status"),
                {"run": run_id},
            )
            return {str(status): int(count) for status, count in rows}
    finally:
        database.dispose()


def mark_dead_runs(settings: Settings, *, stale_after: float | None = None) -> list[str]:
    """Mark ``interrupted`` every running run whose heartbeat stopped; their ids."""
    from ledgerflow.db import Database
    from ledgerflow.ledger.heartbeat import reap_stale_runs

    database = Database(settings)
    try:
        return reap_stale_runs(database.engine(), stale_after=stale_after)
    finally:
        database.dispose()


def open_ledger(settings: Settings) -> Database:
    """The project's databases, after dead runs were marked ``interrupted``.

    Every command that reads the ledger should open it this way, so a run killed with
    SIGKILL never stays ``running``.
    """
    from ledgerflow.db import Database
    from ledgerflow.ledger.heartbeat import reap_stale_runs

    database = Database(settings)
    reap_stale_runs(database.engine())
    return database
