"""What the field's run formats need of a run, read from the ledger in a few batched queries.

A Workflow Run RO-Crate and the OpenLineage events of a run (live or replayed) describe the
same things: the run, each task run with its task (name, module, version, source), the
argument values it took and the value it returned, and the files among them (a file held
in a list or dict counts, found through the value edges). :func:`read_run` gathers them with
SQLAlchemy Core only, so the live emitter can call it from a thread during a run (which
loads no ORM); ``task_runs=`` limits the read to some task runs of the run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from ledgerflow.db.chunks import chunks
from ledgerflow.db.times import utc
from ledgerflow.ledger import tables

__all__ = ["FileFact", "RunFacts", "TaskFact", "TaskRunFact", "ValueFact", "read_run",
           "read_task_runs", "read_tasks"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Container levels followed to find the files a value holds.
MEMBER_DEPTH = 4


@dataclass(frozen=True)
class FileFact:
    """A file as the ledger recorded it: its value hash (path and content), path, content."""

    value_hash: str
    path: str
    content_hash: str
    size: int | None


@dataclass(frozen=True)
class ValueFact:
    """A value: its type and preview, and the files it is or holds."""

    hash: str
    type_name: str
    preview: str | None
    size: int | None
    files: tuple[FileFact, ...] = ()
    is_file: bool = False


@dataclass(frozen=True)
class TaskFact:
    hash: str
    name: str
    module: str | None
    version: str | None
    source: str | None


@dataclass(frozen=True)
class TaskRunFact:
    id: str
    run_id: str
    parent_id: str | None
    task_hash: str
    task_name: str
    call_hash: str | None
    status: str
    attempt: int
    cached_from: str | None
    started_at: datetime | None
    ended_at: datetime | None
    worker: str | None
    exception_type: str | None
    exception_message: str | None
    traceback: str | None
    #: (argument name or position, value), in call order
    inputs: tuple[tuple[str, ValueFact], ...] = ()
    output: ValueFact | None = None

    def files_read(self) -> list[FileFact]:
        return _unique(f for _, value in self.inputs for f in value.files)

    def files_written(self) -> list[FileFact]:
        return list(self.output.files) if self.output is not None else []


@dataclass
class RunFacts:
    id: str
    status: str
    entry_task: str
    arguments: str | None
    command_line: str | None
    started_at: datetime
    ended_at: datetime | None
    host: str | None
    user: str | None
    executor: str | None
    code_version: str | None
    library_version: str | None
    root_call_hash: str | None
    result: ValueFact | None
    task_runs: list[TaskRunFact] = field(default_factory=list)
    tasks: dict[str, TaskFact] = field(default_factory=dict)

    def root_task_runs(self) -> list[TaskRunFact]:
        """The task runs of the run's entry call (the workflow itself, not one of its steps)."""
        roots = [t for t in self.task_runs if t.call_hash is not None
                 and t.call_hash == self.root_call_hash and t.parent_id is None]
        return roots or [t for t in self.task_runs if t.parent_id is None
                         and t.task_name == self.entry_task]


def _unique(files: Iterable[FileFact]) -> list[FileFact]:
    seen: dict[str, FileFact] = {}
    for f in files:
        seen.setdefault(f.value_hash, f)
    return list(seen.values())


def _in(conn: Connection, columns: Any, key: Any, keys: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for batch in chunks(set(keys)):
        out.extend(conn.execute(select(*columns).where(key.in_(batch))))
    return out


def _values(conn: Connection, hashes: set[str]) -> dict[str, ValueFact]:
    """Each value with the files it is or holds (up to :data:`MEMBER_DEPTH` levels down)."""
    v, f, e = tables.value.c, tables.file.c, tables.value_edge.c
    wanted = set(hashes)
    children: dict[str, list[str]] = {}
    frontier = set(hashes)
    for _ in range(MEMBER_DEPTH):
        edges = _in(conn, (e.parent_hash, e.position, e.child_hash), e.parent_hash, frontier)
        for parent, _position, child in sorted(edges, key=lambda r: (r[0], _order(r[1]))):
            children.setdefault(parent, []).append(child)
        frontier = {child for _, _, child in edges} - wanted
        wanted |= frontier
        if not frontier:
            break
    rows = {r.hash: r for r in _in(conn, (v.hash, v.type_name, v.preview, v.size), v.hash, wanted)}
    files = {r.hash: FileFact(r.hash, r.path, r.content_hash, r.size)
             for r in _in(conn, (f.hash, f.path, f.content_hash, f.size), f.hash, wanted)}

    def held(value_hash: str, depth: int) -> list[FileFact]:
        if value_hash in files:
            return [files[value_hash]]
        if depth >= MEMBER_DEPTH:
            return []
        return [x for child in children.get(value_hash, ()) for x in held(child, depth + 1)]

    out: dict[str, ValueFact] = {}
    for h in hashes:
        row = rows.get(h)
        if row is None:
            continue
        out[h] = ValueFact(h, row.type_name, row.preview, row.size, tuple(_unique(held(h, 0))),
                           h in files)
    return out


def _order(position: str) -> tuple[int, str]:
    return (int(position), "") if position.isdigit() else (1 << 30, position)


def read_task_runs(conn: Connection, run_id: str,
                   ids: Collection[str] | None = None) -> list[TaskRunFact]:
    """The task runs of a run (all, or those of ``ids``), their inputs and outputs resolved,
    in the order they started."""
    t, c, a = tables.task_run.c, tables.call.c, tables.argument.c
    columns = (t.id, t.run_id, t.parent_id, t.task_hash, t.task_name, t.args_hash, t.call_hash,
               t.value_hash, t.status, t.attempt, t.cached_from, t.started_at, t.ended_at,
               t.worker, t.exception_type, t.exception_message, t.traceback)
    if ids is None:
        rows = list(conn.execute(select(*columns).where(t.run_id == run_id)))
    else:
        rows = [r for r in _in(conn, columns, t.id, ids) if r.run_id == run_id]
    args: dict[str, list[Any]] = {}
    for row in _in(conn, (a.args_hash, a.position, a.key, a.value_hash), a.args_hash,
                   {r.args_hash for r in rows}):
        args.setdefault(row.args_hash, []).append(row)
    results = {r.hash: r.value_hash for r in _in(conn, (c.hash, c.value_hash), c.hash,
                                                 {r.call_hash for r in rows if r.call_hash})}
    outputs = {r.id: r.value_hash or results.get(r.call_hash) for r in rows}
    values = _values(conn, {x.value_hash for xs in args.values() for x in xs}
                     | {h for h in outputs.values() if h})
    facts = []
    for r in rows:
        inputs = tuple(
            (x.key if x.key is not None else str(x.position), values[x.value_hash])
            for x in sorted(args.get(r.args_hash, ()), key=lambda x: x.position)
            if x.value_hash in values
        )
        out = outputs.get(r.id)
        facts.append(TaskRunFact(
            r.id, r.run_id, r.parent_id, r.task_hash, r.task_name, r.call_hash, r.status,
            r.attempt, r.cached_from, utc(r.started_at), utc(r.ended_at), r.worker,
            r.exception_type, r.exception_message, r.traceback, inputs,
            values.get(out) if out and r.status in ("done", "cached") else None,
        ))
    facts.sort(key=lambda f: (f.started_at is None, f.started_at or _EPOCH, f.id))
    return facts


def read_tasks(conn: Connection, hashes: Iterable[str]) -> dict[str, TaskFact]:
    d = tables.task_def.c
    return {r.hash: TaskFact(r.hash, r.name, r.module, r.version, r.source)
            for r in _in(conn, (d.hash, d.name, d.module, d.version, d.source), d.hash, hashes)}


def read_run(conn: Connection, run_id: str, *, task_runs: bool = True) -> RunFacts:
    """Everything :mod:`ro_crate` and :mod:`openlineage` say about one run (its full id);
    with ``task_runs=False``, the run alone (its ``task_runs`` and ``tasks`` empty)."""
    r = conn.execute(select(tables.run).where(tables.run.c.id == run_id)).one()
    runs = read_task_runs(conn, run_id) if task_runs else []
    result = _values(conn, {r.result_hash}).get(r.result_hash) if r.result_hash else None
    return RunFacts(
        r.id, r.status, r.entry_task, r.arguments, r.command_line, utc(r.started_at),
        utc(r.ended_at), r.host, r.user, r.executor, r.code_version, r.library_version,
        r.root_call_hash, result, runs, read_tasks(conn, {t.task_hash for t in runs}),
    )
