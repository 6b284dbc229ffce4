"""Running and explaining task calls, and opening a ledger (which first marks dead runs
``interrupted``): the engine side of :mod:`ledgerflow.api`."""

from __future__ import annotations

from collections.abc import Mapping
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

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.db import Database

__all__ = [
    "Explanation",
    "Failure",
    "PlanEntry",
    "RunObserver",
    "RunResult",
    "call_target",
    "execute",
    "explain",
    "mark_dead_runs",
    "open_ledger",
    "run",
]


def call_target(
    target: str, arguments: Mapping[str, Any] | None = None, *, root: str | Path | None = None
) -> Call:
    """The lazy call ``task(**arguments)`` of a target (``pkg.module:task`` or ``file.py:task``)."""
    from ledgerflow.engine.loading import load_task

    task = load_task(target, root=root)
    return task(**dict(arguments or {}))  # type: ignore[return-value]


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
