"""The calls of a run as a graph of nodes: discovery, task and argument hashes, values.

Discovery walks the calls nested in arguments with an explicit stack, so an expression
thousands of calls deep never reaches Python's recursion limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledgerflow.engine import node as st
from ledgerflow.engine.arguments import hash_arguments
from ledgerflow.engine.expr import ATOMS, find_calls
from ledgerflow.engine.node import UNLOADED, Node, StoredResult, unread
from ledgerflow.engine.task import Call, Task
from ledgerflow.errors import DatabaseError

if TYPE_CHECKING:
    from ledgerflow.engine.cache import CacheReader
    from ledgerflow.engine.valuing import Values
    from ledgerflow.ledger.recorder import Recorder


@dataclass
class Discovered:
    nodes: list[Node]  # the nodes of the calls asked for, in order
    ready: list[Node] = field(default_factory=list)  # every argument known
    blocked: list[tuple[Node, Node]] = field(default_factory=list)  # (node, failed input)
    created: int = 0


class Graph:
    """Every node of a run, keyed by the identity of its call."""

    def __init__(self, recorder: Recorder, values: Values, cache: CacheReader | None) -> None:
        self.recorder = recorder
        self.values = values
        self.cache = cache
        self.nodes: dict[int, Node] = {}
        self.order: list[Node] = []
        self._task_hashes: dict[int, str] = {}

    def task_hash(self, task: Task[Any, Any]) -> str:
        """The task's code hash; its ``lf_task_def`` row is recorded the first time."""
        found = self._task_hashes.get(id(task))
        if found is None:
            code = task.code
            found = code.hash
            self._task_hashes[id(task)] = found
            self.recorder.task_def(
                (
                    found, task.name, task.namespace, task.version, task.func.__module__,
                    code.source, json.dumps(code.helpers, sort_keys=True), time.time(),
                )
            )
        return found

    def discover(self, calls: list[Call], parent: Node | None) -> Discovered:
        """Nodes for ``calls`` and every call nested in their arguments."""
        nodes = self.nodes
        stack: list[Node] = []
        result = Discovered([self._node_for(call, parent, stack, None) for call in calls])
        result.created = len(stack)
        while stack:
            node = stack.pop()
            waiting = 0
            blocked: Node | None = None
            for value in node.call.values:
                if type(value) in ATOMS:
                    continue
                for dep_call in find_calls(value):
                    dep = nodes.get(id(dep_call))
                    if dep is None:
                        dep = self._node_for(dep_call, parent, stack, result)
                    if dep.phase in st.HAS_VALUE:
                        continue
                    if dep.final:
                        blocked = dep
                        continue
                    dep.dependents.append(node)
                    waiting += 1
            node.waiting = waiting
            if blocked is not None:
                result.blocked.append((node, blocked))
            elif waiting == 0:
                node.phase = st.READY
                result.ready.append(node)
        return result

    def _node_for(
        self, call: Call, parent: Node | None, stack: list[Node], result: Discovered | None
    ) -> Node:
        node = self.nodes.get(id(call))
        if node is None:
            node = Node(call, self.task_hash(call.task), parent)
            self.nodes[id(call)] = node
            self.order.append(node)
            if parent is not None:
                parent.children.append(node)
            stack.append(node)
            if result is not None:
                result.created += 1
        return node

    # -- values ------------------------------------------------------------------------

    def result_of(self, call: Call) -> Any:
        node = self.nodes[id(call)]
        if unread(node.value):
            self.materialize([node])
        return node.value

    def materialize(self, nodes: Iterable[Node]) -> None:
        """Read the values of cached calls that were left unread (one query for all), and
        the results workers stored themselves (from the value store)."""
        pending = []
        for node in nodes:
            if type(node.value) is StoredResult:
                node.value = self.values.load_stored(node.value)
            elif node.value is UNLOADED:
                pending.append(node)
        if not pending:
            return
        assert self.cache is not None
        stored = self.cache.values(n.value_hash for n in pending if n.value_hash)
        for node in pending:
            found = stored.get(node.value_hash or "")
            if found is None:
                raise DatabaseError(
                    f"the cached result {node.value_hash} of {node.describe()} is no longer "
                    "in the ledger",
                    hint=f"run again with --rerun {node.task.name}",
                )
            node.value = self.values.load(found, node.value_hash or "")

    def materialize_calls(self, value: Any) -> None:
        """Read the unread values of the calls nested in ``value``."""
        if type(value) not in ATOMS:
            self.materialize(self.nodes[id(c)] for c in find_calls(value))

    # -- arguments ---------------------------------------------------------------------

    def hash_arguments(self, node: Node) -> None:
        """``node.args_hash`` from each argument's hash (a call's result hash is known)."""
        hash_arguments(node, self.nodes, self.values, self.result_of, self.materialize_calls)

    def concrete_arguments(self, node: Node, *, keep_stored: bool = False) -> None:
        """Make sure ``node.resolved`` holds values, not unread cached results; with
        ``keep_stored``, results workers stored stay references (the worker reads them)."""
        if any(unread(v) for v in node.resolved):
            calls = node.call.values
            deps = (self.nodes[id(c)] for c in calls if type(c) is Call)
            self.materialize(
                d for d in deps if not (keep_stored and type(d.value) is StoredResult)
            )
            node.resolved = tuple(
                self.nodes[id(c)].value if type(c) is Call else r
                for c, r in zip(calls, node.resolved)
            )
