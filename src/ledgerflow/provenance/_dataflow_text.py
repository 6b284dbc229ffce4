"""Dataflows rendered: the text sections of ``ledgerflow dataflow`` and the values, calls and
edges of its ``--json`` form, from what the walk in :mod:`ledgerflow.provenance.dataflow`
collected."""

from __future__ import annotations

from collections.abc import Iterable

from ledgerflow.provenance._dataflow_model import (
    Dataflow,
    DataflowArg,
    DataflowCall,
    DataflowEdge,
    DataflowValue,
    Section,
    Use,
)
from ledgerflow.provenance._graph import GraphLoader, ValueFacts
from ledgerflow.provenance.log import GROUP_AT


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


def render_upstream(
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


def render_downstream(
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
