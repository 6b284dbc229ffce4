"""Building API records from ledger rows, a page at a time.

Every function here takes the rows of one page and adds what the records need (task-run
counts, tags, arguments, result values, log lines) with one query per kind for the whole
page, never one per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ledgerflow.db.chunks import chunks
from ledgerflow.db.times import utc
from ledgerflow.ledger import tables as t
from ledgerflow.provenance.records import (
    ArgumentInfo,
    CallInfo,
    FileInfo,
    LogLine,
    RunInfo,
    TagInfo,
    TaskRunInfo,
    ValueInfo,
    duration_between,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ledgerflow.ledger.schema import FileRow, TaskRun


def tags_for(session: Any, ids: Iterable[str]) -> dict[str, tuple[TagInfo, ...]]:
    found: dict[str, list[TagInfo]] = {}
    for chunk in chunks(ids):
        stmt = select(t.tag).where(t.tag.c.entity_id.in_(chunk)).order_by(t.tag.c.key, t.tag.c.value)
        for tag in session.execute(stmt):
            found.setdefault(tag.entity_id, []).append(
                TagInfo(tag.key, tag.value, tag.entity_id, tag.entity_kind, utc(tag.created_at))
            )
    return {key: tuple(tags) for key, tags in found.items()}


def counts_for(session: Any, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Task runs by status for each run, in one grouped query."""
    found: dict[str, dict[str, int]] = {run_id: {} for run_id in run_ids}
    for chunk in chunks(run_ids):
        stmt = (
            select(t.task_run.c.run_id, t.task_run.c.status, func.count())
            .where(t.task_run.c.run_id.in_(chunk))
            .group_by(t.task_run.c.run_id, t.task_run.c.status)
        )
        for run_id, status, count in session.execute(stmt):
            found[run_id][status] = count
    return found


def runs(session: Any, rows: Sequence[Any]) -> list[RunInfo]:
    """RunInfo for run rows (Core rows or ORM objects), through a session or a connection."""
    ids = [row.id for row in rows]
    counts = counts_for(session, ids)
    tags = tags_for(session, ids)
    return [RunInfo.from_row(row, counts.get(row.id, {}), tags.get(row.id, ())) for row in rows]


def values(session: Session, hashes: Iterable[str], *, with_tags: bool = False) -> dict[str, ValueInfo]:
    found: dict[str, ValueInfo] = {}
    wanted = list(hashes)
    tags = tags_for(session, wanted) if with_tags else {}
    for chunk in chunks(wanted):
        stmt = (
            select(t.value.c.hash, t.value.c.type_name, t.value.c.format, t.value.c.preview, t.value.c.size,
                   t.value.c.created_at, t.file.c.path)
            .outerjoin(t.file, t.file.c.hash == t.value.c.hash)
            .where(t.value.c.hash.in_(chunk))
        )
        for hash_, type_name, fmt, preview, size, created_at, path in session.execute(stmt):
            found[hash_] = ValueInfo(
                hash_, type_name, fmt, preview, size, utc(created_at), path, tags.get(hash_, ())
            )
    return found


def _params(session: Session, task_hashes: Iterable[str]) -> dict[str, list[str]]:
    from ledgerflow.provenance._graph import parameter_names  # the graph module maps the ORM

    found: dict[str, list[str]] = {}
    for chunk in chunks(task_hashes):
        for task_hash, source in session.execute(
            select(t.task_def.c.hash, t.task_def.c.source).where(t.task_def.c.hash.in_(chunk))
        ):
            found[task_hash] = parameter_names(source)
    return found


def arguments(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[ArgumentInfo, ...]]:
    """Arguments per ``args_hash`` for ``(args_hash, task_hash)`` pairs, values included."""
    pairs = list(pairs)
    params = _params(session, {task for _, task in pairs})
    task_of = dict(pairs)
    rows: dict[str, list[tuple[int, str | None, str]]] = {}
    for chunk in chunks(task_of):
        stmt = (
            select(t.argument.c.args_hash, t.argument.c.position, t.argument.c.key, t.argument.c.value_hash)
            .where(t.argument.c.args_hash.in_(chunk))
            .order_by(t.argument.c.args_hash, t.argument.c.position)
        )
        for args_hash, position, key, value_hash in session.execute(stmt):
            rows.setdefault(args_hash, []).append((position, key, value_hash))
    shown = values(session, {v for found in rows.values() for _, _, v in found})
    result: dict[str, tuple[ArgumentInfo, ...]] = {}
    for args_hash, found in rows.items():
        names = params.get(task_of[args_hash], [])
        result[args_hash] = tuple(
            ArgumentInfo(
                position,
                key,
                key or (names[position] if position < len(names) else f"arg{position}"),
                shown.get(value_hash) or _missing_value(value_hash),
            )
            for position, key, value_hash in found
        )
    return result


def _missing_value(value_hash: str) -> ValueInfo:
    return ValueInfo(value_hash, "?", "none", "(value not in the ledger)", None, None)


def task_runs(session: Session, rows: Sequence[TaskRun], *, with_logs: bool = False) -> list[TaskRunInfo]:
    args = arguments(session, {(row.args_hash, row.task_hash) for row in rows})
    results = values(session, {row.value_hash for row in rows if row.value_hash})
    tags = tags_for(session, [row.id for row in rows])
    logs = logs_for(session, task_run_ids=[row.id for row in rows]) if with_logs else {}
    return [
        TaskRunInfo(
            id=row.id,
            run_id=row.run_id,
            parent_id=row.parent_id,
            task_name=row.task_name,
            task_hash=row.task_hash,
            args_hash=row.args_hash,
            call_hash=row.call_hash,
            value_hash=row.value_hash,
            status=row.status,
            attempt=row.attempt,
            cached_from=row.cached_from,
            started_at=utc(row.started_at),
            ended_at=utc(row.ended_at),
            duration=row.duration if row.duration is not None else duration_between(row.started_at, row.ended_at),
            worker=row.worker,
            exception_type=row.exception_type,
            exception_message=row.exception_message,
            traceback=row.traceback,
            arguments=args.get(row.args_hash, ()),
            result=results.get(row.value_hash) if row.value_hash else None,
            tags=tags.get(row.id, ()),
            logs=tuple(logs.get(row.id, ())) if with_logs else None,
        )
        for row in rows
    ]


def logs_for(
    session: Session, *, task_run_ids: Sequence[str] = (), run_id: str | None = None
) -> dict[str | None, list[LogLine]]:
    """Log lines per task run id (None for the run's own lines), oldest first."""
    stmt = select(t.log_record).order_by(t.log_record.c.created_at, t.log_record.c.id)
    if run_id is not None:
        stmt = stmt.where(t.log_record.c.run_id == run_id)
    else:
        stmt = stmt.where(t.log_record.c.task_run_id.in_(list(task_run_ids)))
    found: dict[str | None, list[LogLine]] = {}
    for rec in session.execute(stmt):
        found.setdefault(rec.task_run_id, []).append(
            LogLine(rec.id, rec.run_id, rec.task_run_id, utc(rec.created_at), rec.level, rec.logger, rec.message)
        )
    return found


def calls(session: Session, rows: Sequence[Any]) -> list[CallInfo]:
    """CallInfo for ``(Call, task name)`` rows."""
    args = arguments(session, {(call.args_hash, call.task_hash) for call, _ in rows})
    results = values(session, {call.value_hash for call, _ in rows})
    tags = tags_for(session, [call.hash for call, _ in rows])
    return [
        CallInfo(
            hash=call.hash,
            task_name=name,
            task_hash=call.task_hash,
            args_hash=call.args_hash,
            value_hash=call.value_hash,
            created_at=utc(call.created_at),
            arguments=args.get(call.args_hash, ()),
            result=results.get(call.value_hash),
            tags=tags.get(call.hash, ()),
        )
        for call, name in rows
    ]


def call_rows(session: Session, hashes: Sequence[str]) -> list[Any]:
    from ledgerflow.ledger.schema import CallRow, TaskDef  # (CallRow object, task name) pairs

    stmt = (
        select(CallRow, TaskDef.name)
        .join(TaskDef, TaskDef.hash == CallRow.task_hash)
        .where(CallRow.hash.in_(list(hashes)))
    )
    return list(session.execute(stmt))


def files(session: Session, rows: Sequence[FileRow]) -> list[FileInfo]:
    shown = values(session, [row.hash for row in rows], with_tags=True)
    return [
        FileInfo(
            hash=row.hash,
            path=row.path,
            content_hash=row.content_hash,
            size=row.size,
            mtime=row.mtime,
            created_at=utc(row.created_at),
            value=shown.get(row.hash),
            tags=shown[row.hash].tags if row.hash in shown else (),
        )
        for row in rows
    ]
