"""Which ledger rows an export holds, read in dependency order.

Without a selection every row of every ledger table is streamed. With runs selected, the
rows they reach are found first (keys only, by batched ``IN`` queries: task runs, the calls
below them through call edges, arguments, values and their members through value edges,
files, task definitions, configurations, cache entries of those calls, log records, tags),
then streamed kind by kind, each content-addressed row once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Table, select

from ledgerflow.db.chunks import chunks
from ledgerflow.db.times import utc
from ledgerflow.errors import AmbiguousIdError, NotFoundError
from ledgerflow.provenance._exchange_kinds import KINDS, ORDER, Kind

STREAM_ROWS = 5_000


def _in(conn: Connection, columns: Sequence[Column[Any]], column: Column[Any], keys: Iterable[Any]) -> Iterator[Any]:
    for batch in chunks(keys):
        yield from conn.execute(select(*columns).where(column.in_(batch)))


@dataclass
class Reach:
    """The keys of every row reachable from a set of runs."""

    runs: set[str]
    task_runs: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    args: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    task_defs: set[str] = field(default_factory=set)
    configurations: set[str] = field(default_factory=set)
    cache_keys: set[tuple[str, str]] = field(default_factory=set)


def resolve_runs(conn: Connection, table: Table, refs: Sequence[str]) -> set[str]:
    """Run ids from full ids or unique prefixes."""
    found: set[str] = set()
    for ref in refs:
        ids = list(conn.scalars(select(table.c.id).where(table.c.id.startswith(ref, autoescape=True)).limit(11)))
        if not ids:
            raise NotFoundError(f"no run matches '{ref}'", hint="list runs with `ledgerflow runs`")
        if len(ids) > 1 and ref not in ids:
            shown = ", ".join(sorted(ids)[:10])
            raise AmbiguousIdError(
                f"run prefix '{ref}' matches several runs: {shown}{', ...' if len(ids) > 10 else ''}",
                hint="give more characters of the id",
            )
        found.add(ref if ref in ids else ids[0])
    return found


def select_runs(conn: Connection, refs: Sequence[str] | None, since: datetime | None) -> set[str] | None:
    """The selected run ids, or None for "the whole ledger"."""
    if not refs and since is None:
        return None
    run = KINDS["run"].table
    if refs:
        ids = resolve_runs(conn, run, refs)
        if since is None:
            return ids
        return {r for r in ids if r in _since(conn, run, since, ids)}
    return set(conn.scalars(select(run.c.id).where(run.c.started_at >= utc(since))))  # type: ignore[arg-type]


def _since(conn: Connection, run: Table, since: datetime, ids: set[str]) -> set[str]:
    kept: set[str] = set()
    for batch in chunks(ids):
        query = select(run.c.id).where(run.c.id.in_(batch), run.c.started_at >= utc(since))
        kept.update(conn.scalars(query))
    return kept


def reach(conn: Connection, runs: set[str]) -> Reach:
    """Walk from the runs to every row they need."""
    t = {name: kind.table for name, kind in KINDS.items()}
    found = Reach(runs=set(runs))
    run, task_run, call, edge = t["run"], t["task_run"], t["call"], t["call_edge"]
    for config, root, result in _in(conn, (run.c.config_hash, run.c.root_call_hash, run.c.result_hash), run.c.id, runs):
        _add(found.configurations, config)
        _add(found.calls, root)
        _add(found.values, result)
    cols = (task_run.c.id, task_run.c.task_hash, task_run.c.args_hash, task_run.c.call_hash, task_run.c.value_hash)
    for id_, task_hash, args_hash, call_hash, value_hash in _in(conn, cols, task_run.c.run_id, runs):
        found.task_runs.add(id_)
        _add(found.task_defs, task_hash)
        _add(found.args, args_hash)
        _add(found.calls, call_hash)
        _add(found.values, value_hash)
    found.calls = _closure(conn, edge.c.parent_hash, edge.c.child_hash, found.calls)
    for task_hash, args_hash, value_hash in _in(conn, (call.c.task_hash, call.c.args_hash, call.c.value_hash), call.c.hash, found.calls):
        found.task_defs.add(task_hash)
        found.args.add(args_hash)
        found.values.add(value_hash)
    argument = t["argument"]
    found.values.update(v for (v,) in _in(conn, (argument.c.value_hash,), argument.c.args_hash, found.args))
    cache = t["cache_entry"]
    keys = (cache.c.task_hash, cache.c.args_hash, cache.c.call_hash)
    for task_hash, args_hash, call_hash in _in(conn, keys, cache.c.value_hash, found.values):
        if call_hash in found.calls:
            found.cache_keys.add((task_hash, args_hash))
    value_edge = t["value_edge"]
    found.values = _closure(conn, value_edge.c.parent_hash, value_edge.c.child_hash, found.values)
    return found


def _add(target: set[str], key: str | None) -> None:
    if key is not None:
        target.add(key)


def _closure(conn: Connection, parent: Column[Any], child: Column[Any], start: set[str]) -> set[str]:
    """``start`` and everything below it through an edge table."""
    seen = set(start)
    frontier = set(start)
    while frontier:
        below = {c for (c,) in _in(conn, (child,), parent, frontier)}
        frontier = below - seen
        seen |= frontier
    return seen


def stream_all(conn: Connection, kind: Kind, raw_times: bool) -> Iterator[Any]:
    """Every row of a kind's table (server-side cursor on PostgreSQL)."""
    result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
        kind.select(raw_times=raw_times)
    )
    for partition in result.partitions():
        yield from partition


def stream_reached(conn: Connection, kind: Kind, found: Reach, raw_times: bool) -> Iterator[Any]:
    """The rows of a kind that the selected runs reach."""
    c = kind.table.c
    query = kind.select(raw_times=raw_times)
    if kind.name == "cache_entry":
        by_task: dict[str, list[str]] = {}
        for task_hash, args_hash in found.cache_keys:
            by_task.setdefault(task_hash, []).append(args_hash)
        for task_hash, args in sorted(by_task.items()):
            for batch in chunks(args):
                yield from conn.execute(query.where(c.task_hash == task_hash, c.args_hash.in_(batch)))
        return
    plans: dict[str, tuple[str, Iterable[Any]]] = {
        "configuration": ("hash", found.configurations),
        "task_def": ("hash", found.task_defs),
        "value": ("hash", found.values),
        "value_edge": ("parent_hash", found.values),
        "file": ("hash", found.values),
        "argument": ("args_hash", found.args),
        "call": ("hash", found.calls),
        "call_edge": ("parent_hash", found.calls),
        "run": ("id", found.runs),
        "task_run": ("id", found.task_runs),
        "log_record": ("run_id", found.runs),
        # the rows calls wrote, and the marks of tasks whose calls wrote rows
        "written": ("call_hash", found.calls | found.task_defs),
        "tag": ("entity_id", found.runs | found.task_runs | found.calls | found.values),
    }
    name, keys = plans[kind.name]
    for batch in chunks(keys):
        yield from conn.execute(query.where(c[name].in_(batch)))


def read_records(
    conn: Connection, runs: set[str] | None, *, raw_times: bool = False
) -> Iterator[tuple[Kind, Any]]:
    """Every selected row as ``(kind, row)`` (rows in ``kind.columns`` order), in dependency
    order. ``raw_times`` leaves SQLite's stored time text unparsed (for export)."""
    found = reach(conn, runs) if runs is not None else None
    raw_times = raw_times and conn.dialect.name == "sqlite"
    for kind in ORDER:
        if found is None:
            rows = stream_all(conn, kind, raw_times)
        else:
            rows = stream_reached(conn, kind, found, raw_times)
        for row in rows:
            yield kind, row
