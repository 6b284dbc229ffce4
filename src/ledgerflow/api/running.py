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
    execute,
    explain,
    run,
)
from ledgerflow.errors import ConfigError

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
