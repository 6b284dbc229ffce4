"""Cache management: what the shared cache holds per task, how often it served, clearing it.

Statistics come from the task runs: a *hit* is a task run whose result came from the cache
(status ``cached``), a *miss* one that executed and succeeded (status ``done``). Clearing
removes cache entries only; the values they pointed to stay until ``ledgerflow prune``
finds nothing needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, func, select
from sqlalchemy.orm import aliased

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.db.model import DEFAULT_BIND
from ledgerflow.db.roles import operator_role, require
from ledgerflow.db.times import utc
from ledgerflow.errors import NotFoundError
from ledgerflow.ledger.schema import CacheEntry, TaskDef, TaskRun, Value
from ledgerflow.provenance.query import task_condition

__all__ = ["CachedResult", "TaskCacheStats", "cache_clear", "cache_entries", "cache_list"]

#: The full name of a task definition, as task runs record it (``namespace.name``).
TASK_FULLNAME: Any = case(
    (TaskDef.namespace == "", TaskDef.name), else_=TaskDef.namespace + "." + TaskDef.name
)


@dataclass(frozen=True)
class TaskCacheStats:
    """The cache of one task: entries kept, and hits/misses over every recorded run."""

    task: str
    entries: int
    size: int  # bytes of the cached values, where known
    hits: int  # task runs served from the cache
    misses: int  # task runs executed successfully
    latest_entry: datetime | None

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "entries": self.entries, "size": self.size, "hits": self.hits,
                "misses": self.misses, "hit_rate": self.hit_rate,
                "latest_entry": _iso(self.latest_entry)}


@dataclass(frozen=True)
class CachedResult:
    """One cache entry: a task's arguments and the value they map to."""

    task: str
    task_hash: str
    args_hash: str
    call_hash: str
    value_hash: str
    preview: str | None
    size: int | None
    run_id: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data["created_at"] = _iso(self.created_at)
        return data


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 with its UTC offset (SQLite hands back naive UTC times)."""
    return None if moment is None else utc(moment).isoformat()  # type: ignore[union-attr]


def _connect(settings: Settings, bind: str) -> tuple[Database, Connection]:
    database = Database(settings, read_only=True)
    return database, database.engine(bind).connect()


def _newest() -> Any:
    """The entry is its call's newest version (a call's earlier results stay as history)."""
    newer = aliased(CacheEntry)
    return ~(
        select(newer.task_hash)
        .where(
            newer.task_hash == CacheEntry.task_hash,
            newer.args_hash == CacheEntry.args_hash,
            newer.created_at > CacheEntry.created_at,
        )
        .exists()
    )


def cache_list(
    settings: Settings, task: str | None = None, *, bind: str = DEFAULT_BIND
) -> list[TaskCacheStats]:
    """Cache statistics per task (one task when ``task`` is given), by task name."""
    entries = (
        select(
            TASK_FULLNAME.label("task"),
            func.count().label("entries"),
            func.coalesce(func.sum(Value.size), 0).label("size"),
            func.max(CacheEntry.created_at).label("latest"),
        )
        .join(TaskDef, TaskDef.hash == CacheEntry.task_hash)
        .join(Value, Value.hash == CacheEntry.value_hash)
        .where(_newest())
        .group_by(TASK_FULLNAME)
    )
    runs = (
        select(
            TaskRun.task_name,
            func.sum(case((TaskRun.status == "cached", 1), else_=0)).label("hits"),
            func.sum(case((TaskRun.status == "done", 1), else_=0)).label("misses"),
        )
        .where(TaskRun.status.in_(("cached", "done")))
        .group_by(TaskRun.task_name)
    )
    if task:
        entries = entries.where(task_condition(TASK_FULLNAME, task))
        runs = runs.where(task_condition(TaskRun.task_name, task))
    database, conn = _connect(settings, bind)
    try:
        with conn:
            counts: dict[str, dict[str, Any]] = {}
            for name, n, size, latest in conn.execute(entries):
                counts[name] = {"entries": n, "size": int(size), "latest_entry": utc(latest)}
            for name, hits, misses in conn.execute(runs):
                counts.setdefault(name, {}).update(hits=int(hits or 0), misses=int(misses or 0))
    finally:
        database.dispose()
    if task and not counts:
        raise NotFoundError(
            f"no task named '{task}' has cache entries or task runs",
            hint="see every task with `ledgerflow cache list`",
        )
    return [
        TaskCacheStats(
            task=name,
            entries=c.get("entries", 0),
            size=c.get("size", 0),
            hits=c.get("hits", 0),
            misses=c.get("misses", 0),
            latest_entry=c.get("latest_entry"),
        )
        for name, c in sorted(counts.items())
    ]


def cache_entries(
    settings: Settings, task: str | None = None, *, limit: int = 50, bind: str = DEFAULT_BIND
) -> list[CachedResult]:
    """The most recent cache entries (of one task when ``task`` is given)."""
    query = (
        select(
            TASK_FULLNAME, CacheEntry.task_hash, CacheEntry.args_hash, CacheEntry.call_hash,
            CacheEntry.value_hash, Value.preview, Value.size, CacheEntry.run_id,
            CacheEntry.created_at,
        )
        .join(TaskDef, TaskDef.hash == CacheEntry.task_hash)
        .join(Value, Value.hash == CacheEntry.value_hash)
        .where(_newest())
        .order_by(CacheEntry.created_at.desc(), CacheEntry.args_hash)
        .limit(limit)
    )
    if task:
        query = query.where(task_condition(TASK_FULLNAME, task))
    database, conn = _connect(settings, bind)
    try:
        with conn:
            return [
                CachedResult(name, task_hash, args_hash, call_hash, value_hash, preview, size,
                             run_id, utc(created_at) or created_at)
                for (name, task_hash, args_hash, call_hash, value_hash, preview, size, run_id,
                     created_at) in conn.execute(query)
            ]
    finally:
        database.dispose()


def cache_clear(
    settings: Settings, task: str | None = None, *, dry_run: bool = False, bind: str = DEFAULT_BIND
) -> int:
    """Remove the cache entries (of one task when ``task`` is given); returns how many
    (with ``dry_run``, how many would go, removing nothing).

    An admin operation: on PostgreSQL it connects as the admin when one is configured, and
    otherwise raises :class:`~ledgerflow.errors.PrivilegeError`."""
    statement = delete(CacheEntry)
    if task:
        hashes = select(TaskDef.hash).where(task_condition(TASK_FULLNAME, task))
        statement = statement.where(CacheEntry.task_hash.in_(hashes))
    config = Database(settings).config(bind)
    database = Database(settings, operator_role(config))  # removing entries is the admin's
    try:
        with database.engine(bind).connect() as conn, conn.begin() as transaction:
            require(conn, config, "cache clear", "lf_cache_entry", "DELETE")
            removed = int(conn.execute(statement).rowcount)
            if dry_run:
                transaction.rollback()
            return removed
    finally:
        database.dispose()
