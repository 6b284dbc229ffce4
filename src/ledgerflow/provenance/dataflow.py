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
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from ledgerflow.provenance._graph import ArgFacts, GraphLoader, Need, ValueFacts
from ledgerflow.provenance.log import GROUP_AT
from ledgerflow.provenance.records import _plain

#: Sections (upstream) or calls (downstream) after which a dataflow stops, marked truncated.
MAX_NODES = 1000
#: Nesting depth of containers (lists in dicts in ...) followed when matching values.
MAX_NESTING = 6

Trace = Generator[list[Need], None, Any]


@dataclass(frozen=True)
class DataflowValue:
    hash: str
    name: str
    type_name: str | None
    preview: str | None
    path: str | None
    origin: bool
    origin_in: str | None = None  # the call whose task built it, when not an entry argument

    def display(self) -> str:
        return f"<{self.hash[:8]}> {self.preview if self.preview is not None else self.type_name}"

    def to_json(self) -> dict[str, Any]:
        return _plain(self.__dict__)


@dataclass(frozen=True)
class DataflowArg:
    position: int
    param: str
    value: str  # value hash


@dataclass(frozen=True)
class DataflowCall:
    hash: str
    task_name: str
    task_hash: str
    value_hash: str
    arguments: tuple[DataflowArg, ...]

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["arguments"] = [a.__dict__ for a in self.arguments]
        return data


@dataclass(frozen=True)
class DataflowEdge:
    """``argument``: value -> call (``param``; ``via`` lists the calls it was routed
    through, outermost first; ``inside`` the container it travelled in, downstream);
    ``result``: call -> value."""

    source: str
    target: str
    kind: str
    param: str | None = None
    via: tuple[str, ...] = ()
    inside: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _plain(self.__dict__)


@dataclass(frozen=True)
class RouteStep:
    via: str  # "argument": passed in as an argument of the call; "result": came out of it
    call: str


@dataclass
class Section:
    """Upstream: how one value came to be."""

    value: str
    context: str | None  # the call that consumed the value (None for the start)
    routing: list[RouteStep] = field(default_factory=list)
    call: str | None = None  # the call that produced it
    origin: bool = False
    origin_in: str | None = None  # built inside this call's task (a literal, not an argument)
    parts: tuple[tuple[str, str], ...] = ()  # (position, value) of a container built from them
    #: (position, element, call): the calls inside ``call`` that computed the elements of
    #: the container it returned (a fan-out: ``[summarize(p) for p in parsed]``)
    element_work: tuple[tuple[str, str, str], ...] = ()


@dataclass
class Use:
    """Downstream: one call that took a value (maybe inside a container) as an argument."""

    call: str
    arg: ArgFacts
    inside: str | None


@dataclass(frozen=True)
class Dataflow:
    """A traced dataflow: nodes (values, calls), edges, and text sections."""

    direction: str  # upstream | downstream
    root: str
    values: tuple[DataflowValue, ...]
    calls: tuple[DataflowCall, ...]
    edges: tuple[DataflowEdge, ...]
    lines: tuple[str, ...]
    truncated: bool
    queries: int = 0

    def text(self) -> str:
        return "\n".join(self.lines)

    def value(self, name_or_hash: str) -> DataflowValue:
        for value in self.values:
            if name_or_hash in (value.name, value.hash):
                return value
        raise KeyError(name_or_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "root": self.root,
            "truncated": self.truncated,
            "values": [v.to_json() for v in self.values],
            "calls": [c.to_json() for c in self.calls],
            "edges": [e.to_json() for e in self.edges],
            "text": list(self.lines),
        }


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
    return _render_upstream(loader, walk.root, walk.order, walk.sections, walk.truncated)


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
    return _render_downstream(loader, value_hash, order, uses, truncated)


__all__ = [
    "Dataflow",
    "DataflowArg",
    "DataflowCall",
    "DataflowEdge",
    "DataflowValue",
    "downstream",
    "upstream",
]


# -- rendering ---------------------------------------------------------------------------


class _Names:
    """Readable, unique variable names for values."""

    def __init__(self) -> None:
        self.of: dict[str, str] = {}
        self._used: set[str] = set()
        self._next: dict[str, int] = {}

    def give(self, value: str, base: str) -> str:
        if value in self.of:
            return self.of[value]
        name, n = base, self._next.get(base, 2)
        while name in self._used:
            name, n = f"{base}_{n}", n + 1
        self._next[base] = n
        self._used.add(name)
        self.of[value] = name
        return name


def _display(row: ValueFacts | None, value: str) -> str:
    if row is None:
        return f"<{value[:8]}> (value not in the ledger)"
    shown = row.preview if row.preview is not None else row.type_name
    return f"<{value[:8]}> {shown}"


def _dataflow_values(
    loader: GraphLoader, names: _Names, origins: dict[str, str | None]
) -> tuple[tuple[DataflowValue, ...], dict[str, ValueFacts]]:
    rows = loader.values(names.of)
    values = tuple(
        DataflowValue(
            hash=value,
            name=name,
            type_name=rows[value].type_name if value in rows else None,
            preview=rows[value].preview if value in rows else None,
            path=rows[value].path if value in rows else None,
            origin=value in origins,
            origin_in=origins.get(value),
        )
        for value, name in names.of.items()
    )
    return values, rows


def _dataflow_calls(loader: GraphLoader, calls: Iterable[str]) -> tuple[DataflowCall, ...]:
    found = []
    for call in dict.fromkeys(calls):
        row = loader.calls.get(call)
        if row is None:
            continue
        args = tuple(
            DataflowArg(a.position, loader.param(call, a), a.value_hash) for a in loader.args.get(call, ())
        )
        found.append(DataflowCall(call, row.task_name, row.task_hash, row.value_hash, args))
    return tuple(found)


def _call_text(loader: GraphLoader, call: str, names: dict[str, str] | None = None, inside: dict[str, str] | None = None) -> str:
    """``<1a2b3c4d> task(param, param=name, param=[name, ...])``."""
    row = loader.calls.get(call)
    if row is None:
        return f"<{call[:8]}> (call not in the ledger)"
    parts = []
    for arg in loader.args.get(call, ()):
        param = loader.param(call, arg)
        name = (names or {}).get(arg.value_hash)
        held = (inside or {}).get(arg.value_hash)
        if held is not None:
            parts.append(f"{param}=[{held}, ...]")
        elif name is None or name == param:
            parts.append(param)
        else:
            parts.append(f"{param}={name}")
    return f"<{call[:8]}> {row.task_name}({', '.join(parts)})"


def _render_upstream(
    loader: GraphLoader, root: str, order: list[str], sections: dict[str, Section], truncated: bool
) -> Dataflow:
    calls = [c for s in sections.values() for c in [*(r.call for r in s.routing), s.call] if c]
    calls += [call for s in sections.values() for _, _, call in s.element_work]
    loader.ensure_calls(calls)
    loader.load_params(calls)
    names = _Names()
    names.give(root, "value")
    for value in order:
        call = sections[value].call
        if call is not None:
            for arg in loader.args.get(call, ()):
                names.give(arg.value_hash, loader.param(call, arg))
        for position, part in sections[value].parts:
            names.give(part, f"{names.of[value]}_{_identifier(position)}")
        for position, part, _ in sections[value].element_work:
            names.give(part, f"{names.of[value]}_{_identifier(position)}")
    origins = {v: s.origin_in for v, s in sections.items() if s.origin}
    values, rows = _dataflow_values(loader, names, origins)

    edges: list[DataflowEdge] = []
    for section in sections.values():
        edges.extend(DataflowEdge(part, section.value, "element", pos) for pos, part in section.parts)
        for pos, part, call in section.element_work:
            edges.append(DataflowEdge(call, part, "result"))
            edges.append(DataflowEdge(part, section.value, "element", pos))
        if section.call is None:
            continue
        edges.append(DataflowEdge(section.call, section.value, "result"))
        for arg in loader.args.get(section.call, ()):
            traced = sections.get(arg.value_hash)
            via: tuple[str, ...] = ()
            if traced is not None and traced.context == section.call:
                via = tuple(step.call for step in reversed(traced.routing))
            param = loader.param(section.call, arg)
            edges.append(DataflowEdge(arg.value_hash, section.call, "argument", param, via))

    lines = [f"{names.of[root]} = {_display(rows.get(root), root)}", ""]
    for value in order:
        lines.extend(_section_lines(loader, sections[value], names.of, rows))
        lines.append("")
    if truncated:
        lines.append(f"... stopped after {len(sections)} values (the rest is not shown)")
    while lines and lines[-1] == "":
        lines.pop()
    return Dataflow(
        "upstream", root, values, _dataflow_calls(loader, calls), tuple(edges), tuple(lines),
        truncated, loader.queries,
    )


def _section_lines(loader: GraphLoader, section: Section, names: dict[str, str], rows: dict[str, ValueFacts]) -> list[str]:
    name = names[section.value]
    pad = " " * len(name)
    steps = [
        ("argument of " if step.via == "argument" else "") + _call_text(loader, step.call)
        for step in section.routing
    ]
    if section.call is not None:
        steps.append(_call_text(loader, section.call, names))
    where = ""
    if section.origin_in:
        row = loader.calls.get(section.origin_in)
        where = f" in <{section.origin_in[:8]}> {row.task_name if row else '?'}"
    if section.parts:
        shown = [names.get(part, "?") for _, part in section.parts[:3]]
        more = ", ..." if len(section.parts) > 3 else ""
        steps.append(f"[{', '.join(shown)}{more}] built{where}")
    elif section.origin:
        steps.append(f"origin (built{where})" if where else "origin")
    lines = [f"{name if i == 0 else pad} <-- {step}" for i, step in enumerate(steps)]
    items = [(names.get(part, "?"), part) for _, part in section.parts]
    if section.call is not None:
        items += [
            (names.get(arg.value_hash, loader.param(section.call, arg)), arg.value_hash)
            for arg in loader.args.get(section.call, ())
        ]
    width = max((len(item) for item, _ in items), default=0)
    for item, value in items:
        lines.append(f"  {item:<{width}} = {_display(rows.get(value), value)}")
    lines.extend(_element_lines(loader, section, name))
    return lines


def _element_lines(loader: GraphLoader, section: Section, name: str) -> list[str]:
    """``name[0] <-- <call> task(args)`` per element computed by a call inside the section's
    call; more than ``GROUP_AT`` calls of one task are one line: ``name[0..39] <-- task × 40``."""
    by_task: dict[str, list[tuple[str, str]]] = {}
    for position, _, call in section.element_work:
        row = loader.calls.get(call)
        by_task.setdefault(row.task_name if row else "?", []).append((position, call))
    lines: list[str] = []
    for task_name, work in by_task.items():
        if len(work) <= GROUP_AT:
            lines.extend(f"  {name}[{pos}] <-- {_call_text(loader, call)}" for pos, call in work)
            continue
        first, last = work[0][0], work[-1][0]
        examples = ", ".join(f"<{call[:8]}>" for _, call in work[:3])
        lines.append(f"  {name}[{first}..{last}] <-- {task_name} × {len(work):,} "
                     f"({examples}, ...)")
    return lines


def _identifier(position: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in position)
    return cleaned or "item"


def _render_downstream(
    loader: GraphLoader, root: str, order: list[str], uses: dict[str, list[Use]], truncated: bool
) -> Dataflow:
    calls = [use.call for value in order for use in uses.get(value, ())]
    loader.ensure_calls(calls)
    loader.load_params(calls)
    names = _Names()
    names.give(root, "value")
    producer: dict[str, str] = {}
    for call in dict.fromkeys(calls):
        row = loader.calls.get(call)
        if row is not None:
            producer.setdefault(row.value_hash, call)
    for value in order[1:]:
        direct = [use for use in uses.get(value, ()) if use.inside is None]
        row = loader.calls.get(producer.get(value, ""))
        base = loader.param(direct[0].call, direct[0].arg) if direct else None
        names.give(value, base or f"{row.task_name if row else 'value'}_result")
    values, rows = _dataflow_values(loader, names, {})

    edges: list[DataflowEdge] = []
    lines: list[str] = []
    for value in order:
        lines.append(f"{names.of[value]} = {_display(rows.get(value), value)}")
        for use in _unique_uses(uses.get(value, ())):
            row = loader.calls.get(use.call)
            param = loader.param(use.call, use.arg)
            edges.append(DataflowEdge(value, use.call, "argument", param, (), use.inside))
            inside = {use.inside: names.of[value]} if use.inside else None
            text = _call_text(loader, use.call, names.of, inside)
            result = names.of.get(row.value_hash) if row else None
            lines.append(f"  --> {text}" + (f" --> {result}" if result else ""))
        lines.append("")
    for call in dict.fromkeys(calls):
        row = loader.calls.get(call)
        if row is not None:
            edges.append(DataflowEdge(call, row.value_hash, "result"))
    if truncated:
        lines.append(f"... stopped after {len(set(calls))} calls (the rest is not shown)")
    while lines and lines[-1] == "":
        lines.pop()
    return Dataflow(
        "downstream", root, values, _dataflow_calls(loader, calls), tuple(edges), tuple(lines),
        truncated, loader.queries,
    )


def _unique_uses(uses: Iterable[Use]) -> list[Use]:
    return list({(u.call, u.arg, u.inside): u for u in uses}.values())
