"""A run's task runs as a graph (who called whom, whose result fed whom) and as a timeline.

The graph has one node per task run and two kinds of edges: ``call`` (a task run to the
task runs its task created) and ``data`` (the task run that produced a value to each task
run of the same run that took it as an argument, directly or inside a list or dict).
A large run is *grouped*: one node per task name with its task runs counted by state,
edges counted between groups; the tasks named in ``expand`` are shown one node per task
run (up to :data:`EXPAND_LIMIT`, then one ``more`` node).

The timeline has one bar per task run that started, on its worker's lane; cache hits
(which take no time) are listed on a lane of their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from ledgerflow.db.chunks import chunks
from ledgerflow.db.times import utc
from ledgerflow.ledger.schema import Argument, Run, TaskRun, ValueEdge
from ledgerflow.ledger.status import TASK_RUN_STATUSES

#: Runs with more task runs than this are drawn grouped by task.
GROUP_ABOVE = 300
#: Task runs of one expanded task drawn one by one; the rest become one ``more`` node.
EXPAND_LIMIT = 300
#: Bars a timeline holds (the earliest ones); the rest are counted, not drawn.
TIMELINE_LIMIT = 1000
#: Lane of the task runs served from the cache.
CACHE_LANE = "cache hits"

#: What the graph needs of a task run (no timestamps: they cost the most to read).
_GRAPH_COLUMNS = (TaskRun.id, TaskRun.parent_id, TaskRun.task_name, TaskRun.status, TaskRun.args_hash,
                  TaskRun.value_hash)
_BAR_COLUMNS = (TaskRun.id, TaskRun.task_name, TaskRun.status, TaskRun.started_at, TaskRun.ended_at,
                TaskRun.duration, TaskRun.worker)


@dataclass(frozen=True)
class GraphNode:
    id: str
    kind: str  # task_run | group | more
    label: str
    task: str
    status: str
    count: int = 1
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "label": self.label, "task": self.task,
                "status": self.status, "count": self.count, "counts": dict(self.counts)}


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    kind: str  # call | data
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "kind": self.kind, "count": self.count}


@dataclass(frozen=True)
class RunGraph:
    run_id: str
    grouped: bool
    task_runs: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    finished: bool = False  # the run had ended before its task runs were read: it is final

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run_id, "grouped": self.grouped, "task_runs": self.task_runs,
                "finished": self.finished,
                "nodes": [n.to_json() for n in self.nodes], "edges": [e.to_json() for e in self.edges]}


@dataclass(frozen=True)
class Bar:
    task_run: str
    task: str
    status: str
    lane: str
    start: float  # seconds after the run started
    end: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Timeline:
    run_id: str
    span: float  # seconds from the run's start to its end (or now)
    lanes: list[str]
    bars: list[Bar]
    total: int  # task runs that started (bars drawn or not)
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run_id, "span": self.span, "lanes": self.lanes, "total": self.total,
                "truncated": self.truncated, "bars": [b.to_json() for b in self.bars]}


def _rows(session: Session, run_id: str) -> list[Any]:
    stmt = (select(*_GRAPH_COLUMNS).where(TaskRun.run_id == run_id)
            .order_by(TaskRun.started_at.asc().nulls_last(), TaskRun.id))
    return list(session.execute(stmt).all())


def _grouped(session: Session, run_id: str, total: int, finished: bool) -> RunGraph:
    """The graph of a large run by task, counted in SQL (no task run is loaded)."""
    counts: dict[str, Counter[str]] = {}
    per_parent: Counter[tuple[str, str]] = Counter()
    for parent_id, task, status, n in session.execute(  # one pass: counts and who called whom
        select(TaskRun.parent_id, TaskRun.task_name, TaskRun.status, func.count())
        .where(TaskRun.run_id == run_id).group_by(TaskRun.parent_id, TaskRun.task_name, TaskRun.status)
    ):
        counts.setdefault(task, Counter())[status] += int(n)
        if parent_id is not None:
            per_parent[(parent_id, task)] += int(n)
    nodes = [GraphNode(f"group:{task}", "group", f"{short_name(task)} ×{sum(c.values())}", task,
                       group_status(c), sum(c.values()), {s: c[s] for s in TASK_RUN_STATUSES if c.get(s)})
             for task, c in counts.items()]
    parent_task: dict[str, str] = {}
    for chunk in chunks({parent_id for parent_id, _ in per_parent}):
        rows = session.execute(select(TaskRun.id, TaskRun.task_name).where(TaskRun.id.in_(chunk))).all()
        parent_task.update((row[0], row[1]) for row in rows)
    called: Counter[tuple[str, str]] = Counter()
    for (parent_id, task), n in per_parent.items():
        if parent_id in parent_task and parent_task[parent_id] != task:
            called[(parent_task[parent_id], task)] += n
    edges = [GraphEdge(f"group:{a}", f"group:{b}", "call", n) for (a, b), n in called.items()]
    child, parent = aliased(TaskRun), aliased(TaskRun)
    passed: Counter[tuple[str, str]] = Counter()
    for holder in (False, True):  # the value itself, or a list/dict holding it
        stmt = select(parent.task_name, child.task_name, func.count()).join(
            Argument, Argument.args_hash == child.args_hash)
        if holder:
            stmt = stmt.join(ValueEdge, ValueEdge.parent_hash == Argument.value_hash)
            made = ValueEdge.child_hash
        else:
            made = Argument.value_hash
        stmt = (stmt.join(parent, and_(parent.run_id == run_id, parent.value_hash == made))
                .where(child.run_id == run_id, parent.id != child.id,
                       or_(child.parent_id.is_(None), parent.id != child.parent_id))
                .group_by(parent.task_name, child.task_name))
        for a, b, n in session.execute(stmt):
            if a != b:
                passed[(a, b)] += int(n)
    edges += [GraphEdge(f"group:{a}", f"group:{b}", "data", n) for (a, b), n in passed.items()]
    return RunGraph(run_id, True, total, nodes, edges, finished)


def short_name(task: str) -> str:
    return task.rsplit(".", 1)[-1].rsplit(":", 1)[-1]


def group_status(counts: Counter[str] | dict[str, int]) -> str:
    """The state a group shows: trouble first, then work under way, then the majority."""
    for status in ("failed", "interrupted", "running", "pending", "skipped"):
        if counts.get(status):
            return status
    return "cached" if counts.get("cached", 0) > counts.get("done", 0) else "done"


def _data_edges(session: Session, rows: list[Any]) -> list[tuple[str, str]]:
    """(producer, consumer) task-run pairs: a value one made was an argument of the other."""
    producer: dict[str, str] = {}
    for row in rows:  # started order: a nested call's task run wins over its parent's
        if row.value_hash:
            producer[row.value_hash] = row.id
    args: dict[str, list[str]] = {}
    for chunk in chunks({row.args_hash for row in rows if row.args_hash}):
        for args_hash, value_hash in session.execute(
            select(Argument.args_hash, Argument.value_hash).where(Argument.args_hash.in_(chunk))
        ):
            args.setdefault(args_hash, []).append(value_hash)
    holders = {v for values in args.values() for v in values if v not in producer}
    parts: dict[str, list[str]] = {}
    for chunk in chunks(holders):
        for parent, child in session.execute(
            select(ValueEdge.parent_hash, ValueEdge.child_hash).where(ValueEdge.parent_hash.in_(chunk))
        ):
            parts.setdefault(parent, []).append(child)
    pairs: dict[tuple[str, str], None] = {}
    for row in rows:
        for value in args.get(row.args_hash, ()):
            for made in [value] if value in producer else parts.get(value, ()):
                source = producer.get(made)
                if source is not None and source != row.id and source != row.parent_id:
                    pairs[(source, row.id)] = None
    return list(pairs)


def run_graph(session: Session, run_id: str, *, expand: Iterable[str] = (), group_above: int = GROUP_ABOVE) -> RunGraph:
    """The graph of run ``run_id`` (a full id), grouped by task when it is large."""
    expand = list(expand)
    finished = session.scalar(select(Run.status).where(Run.id == run_id)) not in (None, "running")
    if not expand:
        total = session.scalar(select(func.count()).where(TaskRun.run_id == run_id)) or 0
        if total > group_above:
            return _grouped(session, run_id, int(total), finished)
    rows = _rows(session, run_id)
    by_id = {row.id: row for row in rows}
    links = [(row.parent_id, row.id, "call") for row in rows if row.parent_id in by_id]
    links += [(a, b, "data") for a, b in _data_edges(session, rows)]
    if len(rows) <= group_above:
        each = [GraphNode(row.id, "task_run", short_name(row.task_name), row.task_name, row.status)
                for row in rows]
        return RunGraph(run_id, False, len(rows), each, [GraphEdge(a, b, kind) for a, b, kind in links], finished)
    expanded = set(expand)
    shown: Counter[str] = Counter()
    rest: dict[str, Counter[str]] = {}
    node_of: dict[str, str] = {}
    nodes: list[GraphNode] = []
    for row in rows:
        task = row.task_name
        if task in expanded and shown[task] < EXPAND_LIMIT:
            shown[task] += 1
            node_of[row.id] = row.id
            nodes.append(GraphNode(row.id, "task_run", short_name(task), task, row.status))
            continue
        kind = "more" if task in expanded else "group"
        node_of[row.id] = f"{kind}:{task}"
        rest.setdefault(task, Counter())[row.status] += 1
    for task, per_state in rest.items():
        total = sum(per_state.values())
        kind = "more" if task in expanded else "group"
        label = f"{short_name(task)} +{total} more" if kind == "more" else f"{short_name(task)} ×{total}"
        ordered = {s: per_state[s] for s in TASK_RUN_STATUSES if per_state.get(s)}
        nodes.append(GraphNode(f"{kind}:{task}", kind, label, task, group_status(per_state), total, ordered))
    grouped: Counter[tuple[str, str, str]] = Counter()
    for a, b, kind in links:
        source, target = node_of[a], node_of[b]
        if source != target:
            grouped[(source, target, kind)] += 1
    edges = [GraphEdge(a, b, kind, n) for (a, b, kind), n in grouped.items()]
    return RunGraph(run_id, True, len(rows), nodes, edges, finished)


def timeline(session: Session, run_id: str, *, limit: int = TIMELINE_LIMIT, now: datetime | None = None) -> Timeline:
    """One bar per task run of ``run_id`` that started (the first ``limit``), on its
    worker's lane."""
    run = session.get(Run, run_id)
    started = (TaskRun.run_id == run_id, TaskRun.started_at.is_not(None))
    rows = session.execute(
        select(*_BAR_COLUMNS).where(*started).order_by(TaskRun.started_at, TaskRun.id).limit(limit)
    ).all()
    total = len(rows)
    if total == limit:  # there may be more: counted (a window count would slow the sort down)
        total = int(session.scalar(select(func.count()).where(*started)) or 0)
    now = now or datetime.now(UTC)
    origin = utc(run.started_at) if run is not None and run.started_at else None
    if origin is None:
        origin = utc(rows[0].started_at) if rows else now
    assert origin is not None
    run_end = utc(run.ended_at) if run is not None and run.ended_at else now
    assert run_end is not None
    zero = origin.timestamp()

    def seconds(moment: datetime) -> float:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() - zero

    bars: list[Bar] = []
    lanes: dict[str, None] = {}
    for row in rows:
        start = seconds(row.started_at)
        if row.ended_at is not None:
            end = seconds(row.ended_at)
        elif row.status == "running":
            end = run_end.timestamp() - zero
        else:
            end = start + (row.duration or 0.0)
        lane = CACHE_LANE if row.status == "cached" else (row.worker or "main")
        lanes[lane] = None
        bars.append(Bar(row.id, row.task_name, row.status, lane, max(start, 0.0), max(end, start, 0.0)))
    ordered = sorted(lanes, key=lambda lane: (lane == CACHE_LANE, lane))
    span = max([run_end.timestamp() - zero, *(b.end for b in bars), 0.001])
    return Timeline(run_id, span, ordered, bars, total, total > len(bars))


__all__ = [
    "CACHE_LANE",
    "EXPAND_LIMIT",
    "GROUP_ABOVE",
    "TIMELINE_LIMIT",
    "Bar",
    "GraphEdge",
    "GraphNode",
    "RunGraph",
    "Timeline",
    "group_status",
    "run_graph",
    "short_name",
    "timeline",
]
