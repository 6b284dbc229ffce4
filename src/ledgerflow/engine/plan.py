"""Dry runs: which calls of an expression would come from the cache and which would run.

Only the calls written in the expression are known before running (calls that tasks
return appear when they run). A call whose argument comes from a call that would run
cannot be looked up and is reported as running too. Nothing is written.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ledgerflow.engine.arguments import hash_arguments
from ledgerflow.engine.expr import ATOMS, find_calls
from ledgerflow.engine.results import PlanEntry, RunResult
from ledgerflow.engine.task import Call, Task, rerun_covers

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.engine.cache import CacheReader
    from ledgerflow.engine.valuing import Values
    from ledgerflow.engine.written import WrittenRows


class PlanNode:
    __slots__ = (
        "arg_hashes",
        "args_hash",
        "call",
        "dependents",
        "deps",
        "hit_run",
        "pending",
        "reason",
        "resolved",
        "status",
        "task",
        "value",
        "value_hash",
    )  # fmt: skip

    def __init__(self, call: Call) -> None:
        self.call = call
        self.task: Task[Any, Any] = call.task
        self.deps: list[PlanNode] = []
        self.dependents: list[PlanNode] = []
        self.pending = 0
        self.status: str | None = None
        self.reason: str | None = None
        self.value: Any = None
        self.value_hash: str | None = None
        self.arg_hashes: tuple[str, ...] = ()
        self.args_hash = ""
        self.resolved: tuple[Any, ...] = ()
        self.hit_run: str | None = None

    def preview(self) -> str:
        from ledgerflow.engine.node import arguments_preview

        return arguments_preview(self)  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"{self.task.fullname}({self.preview()})"


class Planner:
    """Walks the static graph of an expression against the cache, without running anything."""

    def __init__(
        self,
        values: Values,
        reader: CacheReader | None,
        rerun: frozenset[str],
        written: WrittenRows | None = None,
    ) -> None:
        self.values = values
        self.reader = reader
        self.rerun = rerun
        self.written = written  # checks that the rows cached calls wrote still exist
        self.nodes: dict[int, PlanNode] = {}
        self.order: list[PlanNode] = []

    def _discover(self, expr: Any) -> None:
        stack = list(reversed(find_calls(expr)))
        while stack:
            call = stack.pop()
            if id(call) in self.nodes:
                continue
            node = self.nodes[id(call)] = PlanNode(call)
            self.order.append(node)
            for value in call.values:
                if type(value) not in ATOMS:
                    stack.extend(reversed(find_calls(value)))
        for node in self.order:
            for value in node.call.values:
                if type(value) in ATOMS:
                    continue
                for dep_call in find_calls(value):
                    dep = self.nodes[id(dep_call)]
                    node.deps.append(dep)
                    dep.dependents.append(node)
            node.pending = len(node.deps)

    def _hash_arguments(self, node: PlanNode) -> None:
        nodes = self.nodes
        hash_arguments(node, nodes, self.values, lambda call: nodes[id(call)].value)

    def plan(self, expr: Any) -> list[PlanNode]:
        """Every node of the expression (dependencies first), with its status and reason."""
        self._discover(expr)
        ready = [n for n in self.order if n.pending == 0]
        sequence: list[PlanNode] = []
        while ready:
            batch, ready = ready, []
            sequence.extend(batch)
            lookups = []
            for node in batch:
                try:
                    self._hash_arguments(node)
                except Exception as exc:
                    node.status, node.reason = "run", f"its arguments cannot be hashed ({exc})"
                    continue
                task = node.task
                if not task.cache:
                    node.status, node.reason = "run", "caching is off for this task (cache=False)"
                elif rerun_covers(task, self.rerun):
                    node.status, node.reason = "run", "asked to rerun (this task or one it calls)"
                elif self.reader is None:
                    node.status, node.reason = "run", "the cache is off for this run"
                else:
                    lookups.append(node)
            if lookups:
                assert self.reader is not None
                hits = self.reader.lookup([(n.task.hash, n.args_hash) for n in lookups])
                gone = self.written.check(hits.values()) if self.written is not None else {}
                for node in lookups:
                    hit = hits.get((node.task.hash, node.args_hash))
                    if hit is None:
                        node.status, node.reason = "run", "no cached result"
                        continue
                    if hit.call_hash in gone:
                        node.status, node.reason = "run", gone[hit.call_hash]
                        continue
                    ok, value, why = self.values.check_hit(hit)
                    if ok:
                        node.status, node.value, node.value_hash = "cached", value, hit.value_hash
                        node.hit_run = hit.run_id
                    else:
                        node.status, node.reason = "run", why
            for node in batch:
                if node.status != "cached":
                    continue
                for dep in node.dependents:
                    dep.pending -= 1
                    if dep.pending == 0 and dep.status is None:
                        ready.append(dep)
        for node in self.order:
            if node.status is None:
                blocking = next((d for d in node.deps if d.status != "cached"), None)
                node.status = "run"
                if blocking is not None:
                    node.reason = f"needs {blocking.describe()}, which is not cached"
                sequence.append(node)
        return sequence


def dry_run(expr: Any, settings: Settings, *, cache: bool, rerun: frozenset[str]) -> RunResult:
    """What a run of ``expr`` would do; writes nothing."""
    from ledgerflow.engine.workspace import open_workspace, task_surroundings

    started = time.monotonic()
    with open_workspace(settings) as space, task_surroundings(settings):
        reader = space.reader if cache else None
        nodes = Planner(space.values(), reader, rerun, space.written()).plan(expr)
    entries = [PlanEntry(n.task.fullname, n.preview(), n.status, n.reason) for n in nodes]  # type: ignore[arg-type]
    counts = {"cached": 0, "run": 0}
    for entry in entries:
        counts[entry.status] += 1
    return RunResult(
        run_id=None,
        status="planned",
        counts=counts,
        duration=time.monotonic() - started,
        plan=entries,
    )
