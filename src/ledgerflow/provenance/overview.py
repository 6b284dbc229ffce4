"""Read-side summaries for browsing a ledger: keyset pages of runs, runs per day, a task
run's log lines page by page, and cache hits and misses per task over time.

Every function takes an open :class:`~sqlalchemy.orm.Session` and only reads. Pages are
*keyset* pages: the next page starts after the last row shown (a cursor), so page 500 costs
what page 1 costs, however many runs the ledger holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from ledgerflow.db.chunks import chunks
from ledgerflow.db.times import utc
from ledgerflow.errors import UsageError
from ledgerflow.ledger.schema import Argument, FileRow, LogRecord, Run, TaskRun, ValueEdge
from ledgerflow.provenance import _load
from ledgerflow.provenance.query import TagFilter, TimeLike, runs_statement
from ledgerflow.provenance.records import LogLine, RunInfo

#: Most rows one page may hold.
MAX_PAGE = 500


@dataclass(frozen=True)
class RunsPage:
    """Runs newest first, and the cursor of the page after them (None on the last page)."""

    runs: list[RunInfo]
    next_cursor: str | None


@dataclass(frozen=True)
class DayCount:
    """How many runs started on one UTC day, by status (or task runs, by outcome)."""

    day: str  # YYYY-MM-DD
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day, "counts": dict(self.counts)}


@dataclass(frozen=True)
class LogPage:
    """Log lines of one task run, oldest first, and the id to continue after."""

    lines: list[LogLine]
    next_after: int | None
    total: int


def encode_cursor(started_at: datetime | None, run_id: str) -> str:
    moment = utc(started_at) or datetime(1970, 1, 1, tzinfo=UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%S.%f')}_{run_id}"


def decode_cursor(text: str) -> tuple[datetime, str]:
    """The (started_at, id) a cursor from :func:`encode_cursor` names; UsageError if bad."""
    stamp, sep, run_id = text.partition("_")
    try:
        if not sep or not run_id.isalnum() or len(run_id) > 64:
            raise ValueError(text)
        moment = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"invalid page cursor {text[:80]!r}", hint="follow the 'next' links") from None
    return moment, run_id


def _page_size(limit: int) -> int:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
    return limit


def runs_page(
    session: Session,
    *,
    status: str | Iterable[str] | None = None,
    task: str | None = None,
    tag: TagFilter | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    limit: int = 50,
    after: str | None = None,
) -> RunsPage:
    """One page of runs matching the filters, newest first, starting after ``after``."""
    limit = _page_size(limit)
    stmt = runs_statement(status=status, task=task, tag=tag, since=since, until=until)
    if after:
        moment, run_id = decode_cursor(after)
        stmt = stmt.where(or_(Run.started_at < moment, and_(Run.started_at == moment, Run.id < run_id)))
    rows = session.execute(stmt.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].started_at, rows[-1].id) if more and rows else None
    return RunsPage(_load.runs(session, rows), cursor)


def day_column(session: Session, column: Any) -> Any:
    """``column`` (a timestamp) as its UTC day, ``YYYY-MM-DD``, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _days(days: int, now: datetime | None) -> tuple[datetime, list[str]]:
    if not isinstance(days, int) or not 1 <= days <= 366:
        raise UsageError(f"days must be between 1 and 366, got {days!r}")
    today = (now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    return start, [(start + timedelta(days=k)).strftime("%Y-%m-%d") for k in range(days)]


def runs_per_day(session: Session, *, days: int = 30, now: datetime | None = None) -> list[DayCount]:
    """Runs started on each of the last ``days`` UTC days (oldest first), by status."""
    start, labels = _days(days, now)
    day = day_column(session, Run.started_at)
    rows = session.execute(
        select(day, Run.status, func.count()).where(Run.started_at >= start).group_by(day, Run.status)
    ).all()
    found: dict[str, dict[str, int]] = {label: {} for label in labels}
    for label, status, count in rows:
        if label in found:
            found[label][status] = int(count)
    return [DayCount(label, found[label]) for label in labels]


def cache_per_day(
    session: Session, *, days: int = 30, now: datetime | None = None
) -> dict[str, list[DayCount]]:
    """Per task name, each day's cache hits (``cached``) and misses (``done``)."""
    start, labels = _days(days, now)
    day = day_column(session, TaskRun.started_at)
    hit = func.sum(case((TaskRun.status == "cached", 1), else_=0))
    miss = func.sum(case((TaskRun.status == "done", 1), else_=0))
    rows = session.execute(
        select(TaskRun.task_name, day, hit, miss)
        .where(TaskRun.started_at >= start, TaskRun.status.in_(("cached", "done")))
        .group_by(TaskRun.task_name, day)
    ).all()
    found: dict[str, dict[str, dict[str, int]]] = {}
    for task, label, hits, misses in rows:
        found.setdefault(task, {})[label] = {"hits": int(hits or 0), "misses": int(misses or 0)}
    return {
        task: [DayCount(label, per_day.get(label, {"hits": 0, "misses": 0})) for label in labels]
        for task, per_day in sorted(found.items())
    }


def log_page(session: Session, task_run_id: str, *, after: int = 0, limit: int = 200) -> LogPage:
    """Up to ``limit`` log lines of a task run with an id above ``after``, oldest first."""
    limit = _page_size(limit)
    if not isinstance(after, int) or after < 0:
        raise UsageError(f"after must be a log line id (0 or more), got {after!r}")
    stmt = (
        select(LogRecord)
        .where(LogRecord.task_run_id == task_run_id, LogRecord.id > after)
        .order_by(LogRecord.id)
        .limit(limit + 1)
    )
    rows = session.scalars(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    total = session.scalar(select(func.count()).where(LogRecord.task_run_id == task_run_id)) or 0
    lines = [LogLine(r.id, r.run_id, r.task_run_id, utc(r.created_at), r.level, r.logger, r.message) for r in rows]
    return LogPage(lines, rows[-1].id if more and rows else None, int(total))


#: Files listed per side (inputs, outputs) of one task run.
MAX_FILES = 200


@dataclass(frozen=True)
class TaskRunFiles:
    """The files a task run took (as arguments, directly or in a list or dict) and returned."""

    inputs: list[tuple[str, str]]  # (file hash, path)
    outputs: list[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {side: [{"hash": h, "path": p} for h, p in getattr(self, side)] for side in ("inputs", "outputs")}


def _files_in(session: Session, values: list[str]) -> list[tuple[str, str]]:
    """Files among ``values`` and among the items of those that are lists or dicts."""
    if not values:
        return []
    held = list(session.scalars(select(ValueEdge.child_hash).where(ValueEdge.parent_hash.in_(values))))
    found: dict[str, str] = {}
    for chunk in chunks([*values, *held]):
        found.update((h, p) for h, p in session.execute(select(FileRow.hash, FileRow.path).where(FileRow.hash.in_(chunk))).all())
    return sorted(found.items(), key=lambda item: item[1])[:MAX_FILES]


def task_run_files(session: Session, task_run_id: str) -> TaskRunFiles:
    row = session.get(TaskRun, task_run_id)
    if row is None:
        return TaskRunFiles([], [])
    args = list(session.scalars(select(Argument.value_hash).where(Argument.args_hash == row.args_hash)))
    return TaskRunFiles(_files_in(session, args), _files_in(session, [row.value_hash] if row.value_hash else []))


def task_run(session: Session, task_run_id: str) -> Any:
    """One task run with its arguments, result and tags, without its log lines."""
    row = session.get(TaskRun, task_run_id)
    return _load.task_runs(session, [row])[0] if row is not None else None


__all__ = [
    "MAX_PAGE",
    "DayCount",
    "LogPage",
    "RunsPage",
    "TaskRunFiles",
    "cache_per_day",
    "day_column",
    "decode_cursor",
    "encode_cursor",
    "log_page",
    "runs_page",
    "runs_per_day",
    "task_run",
    "task_run_files",
]
