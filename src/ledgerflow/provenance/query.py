"""Turning user filters (status, task, tags, file globs, time windows) into SQL.

What a user typed is parsed and checked by :mod:`ledgerflow.provenance.filters`; these
helpers return SQLAlchemy conditions or statements on the Core tables (so listing runs needs no
ORM); :class:`~ledgerflow.provenance.ledger.Ledger` runs them. Every bad input is a :class:`~ledgerflow.errors.UsageError` naming the option.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, union

from ledgerflow.ledger import tables as t
from ledgerflow.ledger.status import RUN_STATUSES, TASK_RUN_STATUSES
from ledgerflow.provenance.filters import TIME_FORMS as TIME_FORMS
from ledgerflow.provenance.filters import TagFilter as TagFilter
from ledgerflow.provenance.filters import TimeLike as TimeLike
from ledgerflow.provenance.filters import glob_to_like as glob_to_like
from ledgerflow.provenance.filters import parse_statuses as parse_statuses
from ledgerflow.provenance.filters import parse_tags as parse_tags
from ledgerflow.provenance.filters import parse_time as parse_time
from ledgerflow.provenance.filters import task_patterns


def tagged(tags: list[tuple[str, str | None]]) -> list[Select[Any]]:
    """One ``SELECT entity_id`` per tag filter (they are combined with AND)."""
    selects = []
    for key, value in tags:
        condition = t.tag.c.key == key if value is None else and_(t.tag.c.key == key, t.tag.c.value == value)
        selects.append(select(t.tag.c.entity_id).where(condition))
    return selects


def path_candidates(path: str | Path, root: Path) -> list[str]:
    """The ways a path may be stored: as given, absolute from here, absolute from the root."""
    text = str(path)
    found = [text]
    given = Path(text).expanduser()
    for base in (Path.cwd(), root):
        full = given if given.is_absolute() else base / given
        found.extend((str(full), os.path.normpath(full)))
    if given.is_absolute():
        for base in (root, Path.cwd()):
            try:
                found.append(str(given.relative_to(base)))
            except ValueError:
                pass
    return list(dict.fromkeys(found))


def file_condition(pattern: str | Path, root: Path) -> ColumnElement[bool]:
    """Files whose path matches a glob, whether stored relative or absolute."""
    text = str(pattern)
    likes = [glob_to_like(candidate) for candidate in path_candidates(text, root)]
    if not Path(text).is_absolute():
        likes.append("%/" + glob_to_like(text.removeprefix("./")))
    return or_(*(t.file.c.path.like(like, escape="\\") for like in dict.fromkeys(likes)))


def holders_of_files(pattern: str | Path, root: Path) -> Select[Any]:
    """Hashes of matching files and of the values (lists, dicts) that hold them directly.

    The matching files are a CTE, so the path scan runs once however often it is used.
    """
    files = select(t.file.c.hash.label("hash")).where(file_condition(pattern, root)).cte("matching_file")
    holders = select(t.value_edge.c.parent_hash).where(t.value_edge.c.child_hash.in_(select(files.c.hash)))
    found = union(select(files.c.hash), holders).cte("matching_holder")
    return select(found.c[0])


def task_condition(column: Any, name: str) -> ColumnElement[bool]:
    """A task name: exact, or the last part of a dotted / ``module:task`` name, or a glob."""
    exact, likes = task_patterns(name)
    matches = [column.like(like, escape="\\") for like in likes]
    return or_(column == exact, *matches) if exact is not None else or_(*matches)


def runs_statement(
    *,
    status: str | Iterable[str] | None = None,
    task: str | None = None,
    tag: TagFilter | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
) -> Select[Any]:
    """Runs matching the filters, newest first (callers add limit/offset)."""
    stmt = select(t.run)
    statuses = parse_statuses(status, RUN_STATUSES)
    if statuses:
        stmt = stmt.where(t.run.c.status.in_(statuses))
    if task:
        ran = select(t.task_run.c.run_id).where(task_condition(t.task_run.c.task_name, task))
        stmt = stmt.where(or_(task_condition(t.run.c.entry_task, task), t.run.c.id.in_(ran)))
    for ids in tagged(parse_tags(tag)):
        stmt = stmt.where(t.run.c.id.in_(ids))
    if since is not None:
        stmt = stmt.where(t.run.c.started_at >= parse_time(since, option="since"))
    if until is not None:
        stmt = stmt.where(t.run.c.started_at < parse_time(until, option="until"))
    return stmt.order_by(t.run.c.started_at.desc(), t.run.c.id.desc())


def task_runs_statement(
    *,
    root: Path,
    run_ids: list[str] | None = None,
    task: str | None = None,
    status: str | Iterable[str] | None = None,
    tag: TagFilter | None = None,
    file: str | Path | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
) -> Select[Any]:
    """Task runs matching the filters, newest first.

    ``tag`` matches tags on the task run, its run, its call or its result (value or file).
    ``file`` matches task
    runs that returned a matching file or took one as an argument (directly or in a list).
    """
    from ledgerflow.ledger.schema import TaskRun  # task runs are read as ORM objects

    stmt = select(TaskRun)
    if run_ids is not None:
        stmt = stmt.where(t.task_run.c.run_id.in_(run_ids) if run_ids else false())
    if task:
        stmt = stmt.where(task_condition(t.task_run.c.task_name, task))
    statuses = parse_statuses(status, TASK_RUN_STATUSES)
    if statuses:
        stmt = stmt.where(t.task_run.c.status.in_(statuses))
    for ids in tagged(parse_tags(tag)):
        returned = select(t.call.c.hash).where(t.call.c.value_hash.in_(ids))
        stmt = stmt.where(
            or_(t.task_run.c.id.in_(ids), t.task_run.c.run_id.in_(ids), t.task_run.c.call_hash.in_(ids),
                t.task_run.c.call_hash.in_(returned))
        )
    if file:
        holders = holders_of_files(file, root)
        args = select(t.argument.c.args_hash).where(t.argument.c.value_hash.in_(holders))
        returned = select(t.call.c.hash).where(t.call.c.value_hash.in_(holders))
        stmt = stmt.where(or_(t.task_run.c.call_hash.in_(returned), t.task_run.c.args_hash.in_(args)))
    if since is not None:
        stmt = stmt.where(t.task_run.c.started_at >= parse_time(since, option="since"))
    if until is not None:
        stmt = stmt.where(t.task_run.c.started_at < parse_time(until, option="until"))
    return stmt.order_by(t.task_run.c.started_at.desc().nulls_last(), t.task_run.c.id.desc())
