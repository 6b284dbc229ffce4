"""A run's log: its task runs as a tree (by ``parent_id``), readable at any size.

A run of 10,000 calls to one task is one line, not 10,000: siblings that ran the same task
are *grouped* (``summarize × 9,990 (9,990 done)``) once there are more than
:data:`GROUP_AT` of them, and the failed or interrupted members of a group are still listed
one by one. ``depth`` stops the tree at a level and ``limit`` after a number of task runs,
each saying what it left out.

The tree is planned on a light query (id, parent, task, status, start) of every task run of
the run; only the task runs actually shown are loaded with their arguments and results.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledgerflow.db.chunks import chunks
from ledgerflow.provenance.records import RunInfo, TaskRunInfo

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["GROUP_AT", "LogEntry", "LogGroup", "RunLog", "run_log"]

#: More siblings of one task than this are shown as one group line.
GROUP_AT = 5
#: Members of a group listed one by one because they failed (at most this many per group).
GROUP_FAILURES_SHOWN = 5
#: States that make a member of a group worth its own line.
NOTEWORTHY = ("failed", "interrupted")


@dataclass(frozen=True)
class LogEntry:
    """A task run shown on its own line, and what its task created."""

    task_run: TaskRunInfo
    children: tuple[LogEntry | LogGroup, ...] = ()
    #: Task runs below this one that are not shown (``depth`` or ``limit`` stopped there).
    hidden: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**self.task_run.to_json(), "children": [c.to_json() for c in self.children],
                "hidden": self.hidden}


@dataclass(frozen=True)
class LogGroup:
    """Sibling task runs of one task, shown as one line with their statuses counted."""

    task_name: str
    parent_id: str | None
    count: int
    counts: dict[str, int]  # members by status
    #: Task runs the members created (not shown).
    descendants: int
    #: Members listed anyway: the failed or interrupted ones (up to GROUP_FAILURES_SHOWN).
    members: tuple[LogEntry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": "task_group", "task_name": self.task_name, "parent_id": self.parent_id,
                "count": self.count, "counts": dict(self.counts),
                "descendants": self.descendants,
                "task_runs": [m.to_json() for m in self.members]}


@dataclass(frozen=True)
class RunLog:
    """What ``ledgerflow log`` shows of a run."""

    run: RunInfo
    task_runs: tuple[LogEntry | LogGroup, ...]
    total: int  # task runs in the run
    shown: int  # task runs shown on their own line
    truncated: bool  # ``limit`` stopped the walk

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run.to_json(), "task_runs": [e.to_json() for e in self.task_runs],
                "total": self.total, "shown": self.shown, "truncated": self.truncated}

    def entries(self) -> Iterator[tuple[int, LogEntry | LogGroup]]:
        """Every line below the run, depth first, with its depth (0 for the top level)."""
        stack: list[tuple[int, LogEntry | LogGroup]] = [(0, e) for e in reversed(self.task_runs)]
        while stack:
            depth, entry = stack.pop()
            yield depth, entry
            below = entry.children if isinstance(entry, LogEntry) else entry.members
            stack.extend((depth + 1, c) for c in reversed(below))


@dataclass
class _Light:
    id: str
    parent_id: str | None
    task_name: str
    status: str
    children: list[_Light] = field(default_factory=list)
    size: int = 0  # task runs below this one


@dataclass
class _Plan:
    """Which task runs get a line: built first, then filled with loaded records."""

    expand: bool
    depth: int | None
    limit: int | None
    wanted: list[str] = field(default_factory=list)
    truncated: bool = False

    def room(self) -> bool:
        if self.limit is not None and len(self.wanted) >= self.limit:
            self.truncated = True
            return False
        return True

    def level(self, nodes: Sequence[_Light], depth: int) -> list[Any]:
        """Plan one level: ('entry', node, children plan, hidden) or ('group', ...)."""
        out: list[Any] = []
        groups: dict[str, list[_Light]] = {}
        if not self.expand:
            for node in nodes:
                groups.setdefault(node.task_name, []).append(node)
        for node in nodes:
            members = groups.get(node.task_name) or []
            if self.truncated:
                break
            if len(members) > GROUP_AT:
                if members[0] is node:  # the group's line sits where its first member ran
                    out.append(self._group(members, depth))
            elif self.room():
                out.append(self._entry(node, depth))
        return out

    def _entry(self, node: _Light, depth: int) -> tuple[Any, ...]:
        self.wanted.append(node.id)
        if self.depth is not None and depth + 1 >= self.depth:
            return ("entry", node, [], node.size)
        below = self.level(node.children, depth + 1)
        shown = _planned_size(below)
        return ("entry", node, below, node.size - shown)

    def _group(self, members: list[_Light], depth: int) -> tuple[Any, ...]:
        counts: dict[str, int] = {}
        for m in members:
            counts[m.status] = counts.get(m.status, 0) + 1
        listed: list[tuple[Any, ...]] = []
        for m in members:
            if m.status in NOTEWORTHY and len(listed) < GROUP_FAILURES_SHOWN and self.room():
                self.wanted.append(m.id)
                listed.append(("entry", m, [], m.size))
        descendants = sum(m.size for m in members)
        return ("group", members[0], counts, len(members), descendants, listed)


def _planned_size(planned: list[Any]) -> int:
    """Task runs a planned level accounts for (shown, grouped or hidden below)."""
    total = 0
    for item in planned:
        if item[0] == "entry":
            total += 1 + item[1].size
        else:
            total += item[3] + item[4]
    return total


def _light_tree(session: Session, run_id: str) -> tuple[list[_Light], int]:
    from sqlalchemy import select

    from ledgerflow.ledger import tables as t

    stmt = (
        select(t.task_run.c.id, t.task_run.c.parent_id, t.task_run.c.task_name, t.task_run.c.status)
        .where(t.task_run.c.run_id == run_id)
        .order_by(t.task_run.c.started_at.asc().nulls_last(), t.task_run.c.id)
    )
    nodes = {row[0]: _Light(*row) for row in session.execute(stmt)}
    roots: list[_Light] = []
    for node in nodes.values():
        parent = nodes.get(node.parent_id) if node.parent_id else None
        (parent.children if parent is not None else roots).append(node)
    # sizes, children before parents (iteratively: a chain may be deeper than the stack)
    order: list[_Light] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        node.size = sum(1 + c.size for c in node.children)
    return roots, len(nodes)


def run_log(
    session: Session,
    run: RunInfo,
    *,
    depth: int | None = None,
    limit: int | None = None,
    expand: bool = False,
) -> RunLog:
    """The log of ``run``: grouped unless ``expand``, cut at ``depth`` levels and ``limit``
    task runs shown on their own line."""
    roots, total = _light_tree(session, run.id)
    plan = _Plan(expand=expand, depth=depth, limit=limit)
    planned = plan.level(roots, 0) if depth is None or depth > 0 else []
    loaded: dict[str, TaskRunInfo] = {}
    from sqlalchemy import select

    from ledgerflow.ledger.schema import TaskRun  # task runs are loaded as ORM objects
    from ledgerflow.provenance import _load

    rows_by_id: dict[str, TaskRun] = {}
    for chunk in chunks(plan.wanted):
        rows_by_id.update((r.id, r) for r in session.scalars(select(TaskRun).where(TaskRun.id.in_(chunk))))
    for info in _load.task_runs(session, [rows_by_id[i] for i in plan.wanted if i in rows_by_id]):
        loaded[info.id] = info

    def build(item: Any) -> LogEntry | LogGroup:
        if item[0] == "entry":
            _, node, below, hidden = item
            return LogEntry(loaded[node.id], tuple(build(b) for b in below), hidden)
        _, first, counts, count, descendants, listed = item
        return LogGroup(first.task_name, first.parent_id, count, dict(sorted(counts.items())),
                        descendants, tuple(build(m) for m in listed))  # type: ignore[misc]

    return RunLog(run, tuple(build(p) for p in planned), total, len(loaded), plan.truncated)
