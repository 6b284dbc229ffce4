"""Listing runs over the database driver alone (``sqlite3``, psycopg), without SQLAlchemy.

``ledgerflow runs`` is read far more often than anything else, and importing SQLAlchemy is
most of what it would cost. :func:`list_runs` answers it with a few plain queries on one
read-only connection, after the same checks as ``Ledger.open``: the schema is at the
revisions this installation knows (:func:`~ledgerflow.migrations.heads.heads_are_current`)
and no run is left to mark ``interrupted``. Whenever one of them has something to say or
to do (an outdated schema, a dead run to reap, a file or server that cannot be opened) it
returns None and the caller takes the SQLAlchemy path
(:func:`~ledgerflow.provenance.reader.list_project_runs`), which says or does it. The
records are the same :class:`~ledgerflow.provenance.records.RunInfo` either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ledgerflow.db.chunks import chunks
from ledgerflow.db.driver import DriverConnection, connect
from ledgerflow.db.times import utc
from ledgerflow.ledger.heartbeat import RUNNING_RUNS_SQL, dead_runs
from ledgerflow.ledger.status import RUN_STATUSES
from ledgerflow.provenance.filters import (
    TagFilter,
    TimeLike,
    check_page,
    parse_statuses,
    parse_tags,
    parse_time,
    task_patterns,
)
from ledgerflow.provenance.records import RunInfo, TagInfo

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings

#: The columns of ``lf_run`` a RunInfo is built from.
RUN_COLUMNS = (
    "id", "status", "entry_task", "arguments", "command_line", "started_at", "ended_at",
    "heartbeat_at", "host", "user", "pid", "executor", "config_hash", "code_version",
    "library_version", "root_call_hash", "result_hash",
)
_TIMES = ("started_at", "ended_at", "heartbeat_at")


def list_runs(
    settings: Settings,
    *,
    status: str | Iterable[str] | None = None,
    task: str | None = None,
    tag: TagFilter | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> list[RunInfo] | None:
    """Runs, newest first, with their task runs counted by status; None when the
    SQLAlchemy path must answer (see the module's docstring)."""
    from ledgerflow.config.settings import DEFAULT_BIND

    opened: dict[str, DriverConnection] = {}

    def open_bind(bind: str) -> DriverConnection:
        if bind not in opened:
            conn = connect(settings.databases[bind])
            if conn is None:
                raise _Fallback
            opened[bind] = conn
        return opened[bind]

    try:
        conn = open_bind(DEFAULT_BIND)
        if not _schema_current(settings, open_bind):
            return None
        running = [(r[0], conn.time(r[1]), conn.time(r[2]), r[3], r[4]) for r in conn.rows(RUNNING_RUNS_SQL)]
        if dead_runs(running):
            return None
        sql, params = _runs_query(conn, status=status, task=task, tag=tag, since=since, until=until)
        limit, offset = check_page(limit, offset)
        sql, params = _page(conn, sql, params, limit, offset)
        rows = [_row(conn, found) for found in conn.rows(sql, params)]
        ids = [row.id for row in rows]
        counts = _counts(conn, ids)
        tags = _tags(conn, ids)
        return [RunInfo.from_row(row, counts.get(row.id, {}), tags.get(row.id, ())) for row in rows]
    except Exception as exc:
        if isinstance(exc, (_Fallback, KeyError, *_driver_errors())):
            return None
        raise
    finally:
        for conn in opened.values():
            try:
                conn.close()
            except _driver_errors():
                pass


class _Fallback(Exception):
    """The SQLAlchemy path must answer."""


def _driver_errors() -> tuple[type[BaseException], ...]:
    """The errors of the drivers in use (psycopg is imported only if it was already)."""
    import sqlite3
    import sys

    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error, psycopg.Error) if psycopg is not None else (sqlite3.Error,)


def _schema_current(settings: Settings, open_bind: Callable[[str], DriverConnection]) -> bool:
    from ledgerflow.migrations.heads import HEADS_SQL, heads_are_current

    def read(bind: str) -> tuple[str, ...] | None:
        conn = open_bind(bind)
        if not _has_version_table(conn):
            return None
        return tuple(sorted(row[0] for row in conn.rows(HEADS_SQL)))

    return heads_are_current(settings, read)


def _has_version_table(conn: DriverConnection) -> bool:
    from ledgerflow.migrations.branches import VERSION_TABLE

    if conn.dialect == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT 1 WHERE to_regclass(%s) IS NOT NULL"
    return bool(conn.rows(sql, [VERSION_TABLE]))


def _runs_query(
    conn: DriverConnection,
    *,
    status: str | Iterable[str] | None,
    task: str | None,
    tag: TagFilter | None,
    since: TimeLike | None,
    until: TimeLike | None,
) -> tuple[str, list[Any]]:
    """The query of ``lf_run`` rows matching the filters, newest first (as
    :func:`~ledgerflow.provenance.query.runs_statement` builds it with SQLAlchemy)."""
    mark = conn.mark
    where: list[str] = []
    params: list[Any] = []
    statuses = parse_statuses(status, RUN_STATUSES)
    if statuses:
        where.append(f"status IN ({', '.join([mark] * len(statuses))})")
        params.extend(statuses)
    if task:
        entry, entry_params = _task_match("entry_task", task, mark)
        ran, ran_params = _task_match("task_name", task, mark)
        where.append(f"({entry} OR id IN (SELECT run_id FROM lf_task_run WHERE {ran}))")
        params.extend([*entry_params, *ran_params])
    for key, value in parse_tags(tag):
        if value is None:
            where.append(f"id IN (SELECT entity_id FROM lf_tag WHERE key = {mark})")
            params.append(key)
        else:
            where.append(f"id IN (SELECT entity_id FROM lf_tag WHERE key = {mark} AND value = {mark})")
            params.extend([key, value])
    if since is not None:
        where.append(f"started_at >= {mark}")
        params.append(conn.time_param(parse_time(since, option="since")))
    if until is not None:
        where.append(f"started_at < {mark}")
        params.append(conn.time_param(parse_time(until, option="until")))
    columns = ", ".join(f'"{name}"' for name in RUN_COLUMNS)
    sql = f"SELECT {columns} FROM lf_run"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY started_at DESC, id DESC", params


def _task_match(column: str, name: str, mark: str) -> tuple[str, list[str]]:
    exact, likes = task_patterns(name)
    parts = [f"{column} LIKE {mark} ESCAPE {mark}" for _ in likes]
    params: list[str] = []
    for like in likes:
        params.extend([like, "\\"])
    if exact is not None:
        parts.insert(0, f"{column} = {mark}")
        params.insert(0, exact)
    return "(" + " OR ".join(parts) + ")", params


def _page(
    conn: DriverConnection, sql: str, params: list[Any], limit: int | None, offset: int
) -> tuple[str, list[Any]]:
    if limit is not None:
        return f"{sql} LIMIT {conn.mark} OFFSET {conn.mark}", [*params, limit, offset]
    if offset:
        no_limit = " LIMIT -1" if conn.dialect == "sqlite" else ""
        return f"{sql}{no_limit} OFFSET {conn.mark}", [*params, offset]
    return sql, params


def _row(conn: DriverConnection, values: Sequence[Any]) -> Any:
    row = dict(zip(RUN_COLUMNS, values, strict=True))
    for name in _TIMES:
        row[name] = conn.time(row[name])
    return SimpleNamespace(**row)


def _in(conn: DriverConnection, chunk: list[str]) -> str:
    return ", ".join([conn.mark] * len(chunk))


def _counts(conn: DriverConnection, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {run_id: {} for run_id in run_ids}
    for chunk in chunks(run_ids):
        sql = (f"SELECT run_id, status, count(*) FROM lf_task_run WHERE run_id IN ({_in(conn, chunk)}) "
               "GROUP BY run_id, status")
        for run_id, status, count in conn.rows(sql, chunk):
            found[run_id][status] = count
    return found


def _tags(conn: DriverConnection, ids: Sequence[str]) -> dict[str, tuple[TagInfo, ...]]:
    found: dict[str, list[TagInfo]] = {}
    for chunk in chunks(ids):
        sql = (f"SELECT key, value, entity_id, entity_kind, created_at FROM lf_tag "
               f"WHERE entity_id IN ({_in(conn, chunk)}) ORDER BY key, value")
        for key, value, entity_id, entity_kind, created_at in conn.rows(sql, chunk):
            found.setdefault(entity_id, []).append(
                TagInfo(key, value, entity_id, entity_kind, utc(conn.time(created_at)))
            )
    return {key: tuple(tags) for key, tags in found.items()}
