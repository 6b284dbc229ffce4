"""How a value was derived (upstream) and what was derived from it (downstream).

Upstream, every value gets one *section*: the call that produced it, reached from the call
that consumed it by *routing* through parent calls (the value came in as an argument of a
parent, or out of a sibling call's result), and that call's arguments, each of which gets a
section in turn, down to values with no producer (*origins*: entry arguments or literals).
A value reached from several branches is traced once and referred to by its name, so the
result is a DAG rendered like::

    value = <3fa2b1c0> File(path=out/sample4.vcf)

    value <-- <9b1e22aa> call_variants(bam, ref_genome)
      bam        = <77c1d2e3> File(path=out/sample4.bam)
      ref_genome = <0d4c9a1b> File(path=data/ref.fa)

    bam <-- argument of <5e6f7a8b> call_variants_all(bams, ref_genome)
        <-- <1a2b3c4d> align_reads_all(fastqs, ref_genome)
        <-- <2b3c4d5e> align_reads(fastq, ref_genome)
      ...

The walk is level by level: each trace is a generator that yields what it needs next
(a call's row and arguments, a call's children, a value's producers or containers); the
driver loads what every pending trace needs with one ``IN (...)`` query per kind, then
resumes them. The number of queries follows the depth of the derivation, not its size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

from sqlalchemy.orm import Session

from ledgerflow.provenance._dataflow_model import (
    Dataflow,
    DataflowArg,
    DataflowCall,
    DataflowEdge,
    DataflowValue,
    RouteStep,
    Section,
    Use,
)
from ledgerflow.provenance._dataflow_text import render_downstream, render_upstream
from ledgerflow.provenance._graph import GraphLoader, Need

#: Sections (upstream) or calls (downstream) after which a dataflow stops, marked truncated.
MAX_NODES = 1000
#: Nesting depth of containers (lists in dicts in ...) followed when matching values.
MAX_NESTING = 6

Trace = Generator[list[Need], None, Any]


def _drive(loader: GraphLoader, traces: deque[Trace]) -> None:
    """Run traces, loading what all parked traces need in one batch per round."""
    parked: list[Trace] = []
    while traces or parked:
        while traces:
            trace = traces.popleft()
            try:
                needs = next(trace)
            except StopIteration:
                continue
            if loader.request(needs):
                parked.append(trace)
            else:
                traces.append(trace)
        if parked:
            loader.load()
            traces.extend(parked)
            parked = []


class _Upstream:
    def __init__(self, loader: GraphLoader, root: str, max_nodes: int) -> None:
        self.loader = loader
        self.root = root
        self.max_nodes = max_nodes
        self.sections: dict[str, Section] = {}
        self.order: list[str] = []
        self.queue: deque[Trace] = deque()
        self.truncated = False

    def run(self) -> None:
        self._spawn(self.root, None)
        _drive(self.loader, self.queue)

    def _spawn(self, value: str, context: str | None) -> None:
        if value in self.sections:
            return
        if len(self.sections) >= self.max_nodes:
            self.truncated = True
            return
        section = Section(value, context)
        self.sections[value] = section
        self.order.append(value)
        self.queue.append(self._trace(section))

    def _containers(self, value: str) -> Trace:
        """Every value that holds ``value``, however deeply nested."""
        found: set[str] = set()
        frontier = {value}
        for _ in range(MAX_NESTING):
            yield [Need("holders", v) for v in frontier]
            frontier = {h for v in frontier for h in self.loader.holders[v]} - found
            if not frontier:
                break
            found |= frontier
        return found

    def _trace(self, section: Section) -> Trace:
        loader, value = self.loader, section.value
        if section.context is None:
            yield [Need("producers", value)]
            producers = loader.producers[value]
            if producers:
                section.call = yield from self._deepest(producers)
            else:
                yield from self._parts(section, None)
        else:
            yield from self._route(section)
        if section.call is not None:
            yield [Need("call", section.call)]
            for arg in loader.args.get(section.call, ()):
                self._spawn(arg.value_hash, section.call)
            yield from self._element_work(section, section.call)

    def _element_work(self, section: Section, call: str) -> Trace:
        """The child calls of ``call`` whose results are the elements of the container it
        returned, element by element (at most ``max_nodes`` of them)."""
        yield [Need("elements", section.value), Need("children", call)]
        parts = self.loader.elements[section.value]
        if not parts:
            return
        made_by: dict[str, str] = {}
        for child in self.loader.children[call]:
            row = self.loader.calls.get(child)
            if row is not None:
                made_by.setdefault(row.value_hash, child)
        work = [(pos, part, made_by[part]) for pos, part in parts if part in made_by]
        if len(work) > self.max_nodes:
            work, self.truncated = work[: self.max_nodes], True
        section.element_work = tuple(work)

    def _route(self, section: Section) -> Trace:
        loader, value = self.loader, section.value
        call = section.context
        assert call is not None
        containers: set[str] | None = None
        visited = {call}
        while True:
            yield [Need("call", call)]
            parents = loader.parents.get(call, ())
            if not parents:
                section.origin = True
                return
            parent = parents[0]
            if containers is None:
                yield [Need("call", parent), Need("children", parent), Need("holders", value)]
                containers = yield from self._containers(value)
            else:
                yield [Need("call", parent), Need("children", parent)]
            held = {value} | containers
            if parent not in visited and any(a.value_hash in held for a in loader.args.get(parent, ())):
                section.routing.append(RouteStep("argument", parent))
                visited.add(parent)
                call = parent
                continue
            sibling = self._sibling(parent, call, value, containers)
            if sibling is not None:
                section.call = yield from self._descend(section, sibling, value, containers)
                return
            yield [Need("producers", value)]
            producers = loader.producers[value]
            if producers:
                section.call = yield from self._deepest(producers)
            else:
                section.origin_in = parent
                yield from self._parts(section, call)
            return

    def _parts(self, section: Section, context: str | None) -> Trace:
        """A value no call returned: a container built from traced parts, or an origin."""
        yield [Need("elements", section.value)]
        section.parts = self.loader.elements[section.value]
        section.origin = not section.parts
        for _, part in section.parts:
            self._spawn(part, context)

    def _sibling(self, parent: str, consumer: str, value: str, containers: set[str]) -> str | None:
        """The child of ``parent`` whose result is (or holds) ``value``, nearest before ``consumer``."""
        children = self.loader.children[parent]
        before = children[: children.index(consumer)] if consumer in children else children
        for wanted in ({value}, containers):
            for group in (reversed(before), reversed(children)):
                for child in group:
                    row = self.loader.calls.get(child)
                    if row is not None and row.value_hash in wanted and child != consumer:
                        return child
        return None

    def _descend(self, section: Section, call: str, value: str, containers: set[str]) -> Trace:
        """Follow results down through the children that returned ``value``."""
        seen = {call}
        while True:
            yield [Need("children", call), Need("call", call)]
            found = None
            for wanted in ({value}, containers):
                for child in reversed(self.loader.children[call]):
                    row = self.loader.calls.get(child)
                    if row is not None and row.value_hash in wanted and child not in seen:
                        found = child
                        break
                if found:
                    break
            if found is None:
                return call
            section.routing.append(RouteStep("result", call))
            seen.add(found)
            call = found

    def _deepest(self, producers: tuple[str, ...]) -> Trace:
        """Among calls returning the same value, the innermost one, latest first."""
        if len(producers) == 1:
            return producers[0]
        yield [Need("children", p) for p in producers]
        inner = [p for p in producers if not set(self.loader.children[p]) & set(producers)]
        return (inner or list(producers))[0]


def upstream(session: Session, value_hash: str, *, max_nodes: int = MAX_NODES) -> Dataflow:
    """The derivation of a value, down to its origins."""
    loader = GraphLoader(session)
    walk = _Upstream(loader, value_hash, max_nodes)
    walk.run()
    return render_upstream(loader, walk.root, walk.order, walk.sections, walk.truncated)


def downstream(session: Session, value_hash: str, *, max_nodes: int = MAX_NODES) -> Dataflow:
    """Every call that took the value (or something derived from it) as an argument."""
    loader = GraphLoader(session)
    uses: dict[str, list[Use]] = {}
    order = [value_hash]
    seen_values = {value_hash}
    seen_calls: set[str] = set()
    frontier = {value_hash}
    truncated = False
    while frontier and not truncated:
        holder_of: dict[str, set[str]] = {v: {v} for v in frontier}
        level = set(frontier)
        for _ in range(MAX_NESTING):
            loader.request([Need("holders", v) for v in level])
            loader.load()
            nxt: set[str] = set()
            for v in level:
                for h in loader.holders[v]:
                    if h not in holder_of:
                        nxt.add(h)
                    holder_of.setdefault(h, set()).update(holder_of[v])
            if not nxt:
                break
            level = nxt
        consumers = loader.consumers(holder_of, 4 * (max_nodes - len(seen_calls)) + 16)
        frontier = set()
        for arg, call in consumers:
            if call.hash not in seen_calls:
                if len(seen_calls) >= max_nodes:
                    truncated = True
                    break
                seen_calls.add(call.hash)
            for source in sorted(holder_of[arg.value_hash]):
                inside = None if arg.value_hash == source else arg.value_hash
                uses.setdefault(source, []).append(Use(call.hash, arg, inside))
            if call.value_hash not in seen_values:
                seen_values.add(call.value_hash)
                order.append(call.value_hash)
                frontier.add(call.value_hash)
    return render_downstream(loader, value_hash, order, uses, truncated)


__all__ = [
    "Dataflow",
    "DataflowArg",
    "DataflowCall",
    "DataflowEdge",
    "DataflowValue",
    "downstream",
    "upstream",
]
