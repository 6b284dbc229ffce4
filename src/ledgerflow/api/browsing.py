"""Browsing the ledger: what the dashboard's pages call besides :mod:`ledgerflow.api.reading`.

Keyset pages of runs, runs per day, a run's graph and timeline, a task run without its
log lines and those lines page by page, why a task run executed, cache hits and misses per
day. Like the reading functions, each takes the project's settings or an open
:class:`~ledgerflow.provenance.ledger.Ledger`, and only reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ledgerflow.config.settings import Settings
    from ledgerflow.provenance.ledger import Ledger
    from ledgerflow.provenance.overview import DayCount, LogPage, RunsPage, TaskRunFiles
    from ledgerflow.provenance.records import RunInfo, TaskRunInfo
    from ledgerflow.provenance.run_graph import RunGraph, Timeline

__all__ = [
    "cache_per_day",
    "log_page",
    "open_reader",
    "run_graph",
    "run_id",
    "run_timeline",
    "runs_page",
    "runs_per_day",
    "stale_seconds",
    "task_run_files",
    "task_run_info",
    "why",
]

#: Characters of a run's id (hex): a full id is looked up directly, not as a prefix.
RUN_ID_LENGTH = 32


def open_reader(settings: Settings) -> Ledger:
    """The project's ledger opened for a long-lived reader: the schema is checked
    (:class:`~ledgerflow.errors.MigrationError` when it does not match the library) and
    nothing is ever written (dead runs are not marked ``interrupted``)."""
    from ledgerflow.provenance.ledger import Ledger

    return Ledger.open(settings, reap_stale=False)


@contextmanager
def _session(source: Settings | Ledger) -> Iterator[Session]:
    from ledgerflow.provenance.ledger import Ledger

    book = source if isinstance(source, Ledger) else open_reader(source)
    try:
        session = book.database.session()
        try:
            yield session
        finally:
            session.close()
    finally:
        if book is not source:
            book.close()


def runs_page(source: Settings | Ledger, *, after: str | None = None, limit: int = 50,
              **filters: Any) -> RunsPage:
    """A keyset page of runs, newest first. ``filters`` as for ``runs`` (status, task, tag,
    since, until); ``after`` is the previous page's ``next_cursor``."""
    from ledgerflow.provenance import overview

    with _session(source) as session:
        return overview.runs_page(session, after=after, limit=limit, **filters)


def runs_per_day(source: Settings | Ledger, *, days: int = 30) -> list[DayCount]:
    """Runs started on each of the last ``days`` UTC days, by status, oldest first."""
    from ledgerflow.provenance import overview

    with _session(source) as session:
        return overview.runs_per_day(session, days=days)


def run_id(source: Settings | Ledger, run: str) -> str:
    """The full id of the run an id or prefix names (NotFoundError otherwise)."""
    from sqlalchemy import select

    from ledgerflow.ledger.schema import Run
    from ledgerflow.provenance import ids

    with _session(source) as session:
        text = str(run).strip().lower()
        if len(text) == RUN_ID_LENGTH and ids.is_hex(text):  # a full id: one primary-key lookup
            found = session.scalar(select(Run.id).where(Run.id == text))
            if found is not None:
                return str(found)
        return ids.resolve(session, run, source.root, kinds=("run",)).id


def run_graph(source: Settings | Ledger, run: str, *, expand: Iterable[str] = ()) -> RunGraph:
    """A run's task runs as a graph, grouped by task when the run is large (``expand``:
    task names to show one node per task run)."""
    from ledgerflow.provenance import run_graph as graphs

    full = run_id(source, run)
    with _session(source) as session:
        return graphs.run_graph(session, full, expand=expand)


def run_timeline(source: Settings | Ledger, run: str) -> Timeline:
    """A run's task runs as bars on their workers' lanes (cache hits on their own)."""
    from ledgerflow.provenance import run_graph as graphs

    full = run_id(source, run)
    with _session(source) as session:
        return graphs.timeline(session, full)


def task_run_info(source: Settings | Ledger, task_run: str) -> TaskRunInfo:
    """One task run (id or prefix) with its arguments, result and tags; ``logs`` is None
    (see :func:`log_page`)."""
    from ledgerflow.provenance import ids, overview

    with _session(source) as session:
        found = ids.resolve(session, task_run, source.root, kinds=("task_run",))
        return overview.task_run(session, found.id)  # type: ignore[no-any-return]


def task_run_files(source: Settings | Ledger, task_run: str) -> TaskRunFiles:
    """The files a task run took (directly or inside a list or dict) and returned."""
    from ledgerflow.provenance import ids, overview

    with _session(source) as session:
        found = ids.resolve(session, task_run, source.root, kinds=("task_run",))
        return overview.task_run_files(session, found.id)


def log_page(source: Settings | Ledger, task_run: str, *, after: int = 0, limit: int = 200) -> LogPage:
    """Up to ``limit`` log lines of a task run with ids above ``after``, oldest first."""
    from ledgerflow.provenance import ids, overview

    with _session(source) as session:
        found = ids.resolve(session, task_run, source.root, kinds=("task_run",))
        return overview.log_page(session, found.id, after=after, limit=limit)


def why(source: Settings | Ledger, task_run: str) -> str:
    """Why a recorded task run executed, came from the cache or did not run (from the
    ledger alone: nothing is imported or executed)."""
    from ledgerflow.provenance import ids
    from ledgerflow.provenance.why import why as why_task_run

    with _session(source) as session:
        found = ids.resolve(session, task_run, source.root, kinds=("task_run",))
        return why_task_run(session, found.id)


def stale_seconds(source: Settings | Ledger, run: RunInfo) -> float | None:
    """How long a ``running`` run has been silent, when its heartbeat is older than the
    ledger counts as dead (its process probably died; a command that writes the ledger will
    mark it ``interrupted``); None otherwise. The age is measured with the database's clock,
    the one PostgreSQL writes heartbeats with, never the reader's."""
    from ledgerflow.db.times import database_now, utc
    from ledgerflow.ledger.heartbeat import STALE_AFTER

    if run.status != "running":
        return None
    last = utc(run.heartbeat_at or run.started_at)
    if last is None:
        return None
    with _session(source) as session:
        now = database_now(session)
    silent = (now - last).total_seconds()
    return silent if silent > STALE_AFTER else None


def cache_per_day(source: Settings | Ledger, *, days: int = 30) -> dict[str, list[DayCount]]:
    """Per task, its cache hits and misses on each of the last ``days`` UTC days."""
    from ledgerflow.provenance import overview

    with _session(source) as session:
        return overview.cache_per_day(session, days=days)
