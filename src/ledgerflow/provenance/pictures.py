"""Graph pictures of a dataflow or of a run's task runs, as Graphviz DOT or Mermaid text.

Both formats are drawn from one small :class:`Picture` (nodes and edges with labels), so a
task name, a path or a preview with quotes, brackets or newlines is escaped in one place per
format and cannot break the graph: DOT labels are quoted strings with ``"`` and ``\\``
escaped; Mermaid labels are quoted strings whose ``"``, ``#``, ``<``, ``>`` and backquote
are written as Mermaid's ``#code;`` entities. Node ids are generated (``n0``, ``n1``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerflow.provenance.dataflow import Dataflow
from ledgerflow.provenance.log import LogEntry, LogGroup, RunLog

#: The formats :func:`render` accepts.
FORMATS = ("dot", "mermaid")


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str  # value | origin | call | run | task_run | group


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""


@dataclass
class Picture:
    """Nodes and edges to draw, left to right (upstream first)."""

    title: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def node(self, key: object, label: str, kind: str) -> str:
        """The id of the node for ``key``, added with ``label`` the first time."""
        ident = self._ids.get(key)
        if ident is None:
            ident = self._ids[key] = f"n{len(self._ids)}"
            self.nodes[ident] = Node(ident, label, kind)
        return ident

    def __post_init__(self) -> None:
        self._ids: dict[object, str] = {}


# -- what to draw -------------------------------------------------------------------------


def dataflow_picture(flow: Dataflow) -> Picture:
    """Values and calls of a dataflow, with its argument, result and element edges; an
    argument routed through parent calls names them on its edge (``bam via align_all,
    call_all``)."""
    picture = Picture(f"{flow.direction} dataflow of {flow.root[:8]}")
    values = {v.hash: v for v in flow.values}
    calls = {c.hash: c for c in flow.calls}

    def value(hash_: str) -> str:
        found = values.get(hash_)
        if found is None:
            return picture.node(("v", hash_), f"<{hash_[:8]}>", "value")
        label = f"{found.name} = {found.display()}"
        return picture.node(("v", hash_), label, "origin" if found.origin else "value")

    def call(hash_: str) -> str:
        found = calls.get(hash_)
        name = found.task_name if found is not None else "?"
        return picture.node(("c", hash_), f"<{hash_[:8]}> {name}", "call")

    for v in flow.values:
        value(v.hash)
    for edge in flow.edges:
        if edge.kind == "argument":
            label = edge.param or ""
            if edge.via:  # routed through parent calls: named on the edge, as the text does
                names = (calls[c].task_name if c in calls else c[:8] for c in edge.via)
                label = f"{label} via {', '.join(names)}"
            picture.edges.append(Edge(value(edge.source), call(edge.target), label))
        elif edge.kind == "result":
            picture.edges.append(Edge(call(edge.source), value(edge.target)))
        else:  # element: a part of a container value
            picture.edges.append(Edge(value(edge.source), value(edge.target), f"[{edge.param}]"))
    return picture


def log_picture(found: RunLog) -> Picture:
    """A run and its task runs as a tree (grouped siblings are one node, as in the text)."""
    run = found.run
    picture = Picture(f"run {run.id[:8]}")
    top = picture.node(("run", run.id), f"run {run.id[:8]} {run.entry_task} [{run.status}]", "run")

    def add(parent: str, entry: LogEntry | LogGroup) -> None:
        if isinstance(entry, LogEntry):
            tr = entry.task_run
            ident = picture.node(("tr", tr.id), f"{tr.task_name} [{tr.status}]", "task_run")
            picture.edges.append(Edge(parent, ident))
            for child in entry.children:
                add(ident, child)
            return
        counts = ", ".join(f"{n} {status}" for status, n in sorted(entry.counts.items()))
        ident = picture.node(("group", parent, entry.task_name),
                             f"{entry.task_name} × {entry.count:,} ({counts})", "group")
        picture.edges.append(Edge(parent, ident))
        for member in entry.members:
            add(ident, member)

    for entry in found.task_runs:
        add(top, entry)
    return picture


# -- how to write it ----------------------------------------------------------------------

_DOT_SHAPES = {"value": "note", "origin": "note", "call": "box", "run": "box",
               "task_run": "box", "group": "box3d"}


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(picture: Picture) -> str:
    lines = [f"digraph {_dot_quote(picture.title)} {{", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=10];']
    for node in picture.nodes.values():
        style = ', style="rounded"' if node.kind in ("call", "task_run") else ""
        style += ', style="filled", fillcolor="#eeeeee"' if node.kind == "origin" else ""
        lines.append(f"  {node.id} [label={_dot_quote(node.label)}, "
                     f"shape={_DOT_SHAPES[node.kind]}{style}];")
    for edge in picture.edges:
        label = f" [label={_dot_quote(edge.label)}]" if edge.label else ""
        lines.append(f"  {edge.source} -> {edge.target}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "`": "#96;"}
_MERMAID_SHAPES = {"value": ('["', '"]'), "origin": ('[/"', '"/]'), "call": ('("', '")'),
                   "run": ('[["', '"]]'), "task_run": ('("', '")'), "group": ('[["', '"]]')}


def _mermaid_quote(text: str) -> str:
    escaped = "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in text)
    return " ".join(escaped.split())  # newlines and tabs become spaces


def to_mermaid(picture: Picture) -> str:
    lines = ["flowchart LR"]
    for node in picture.nodes.values():
        opening, closing = _MERMAID_SHAPES[node.kind]
        lines.append(f"  {node.id}{opening}{_mermaid_quote(node.label)}{closing}")
    for edge in picture.edges:
        label = f'|"{_mermaid_quote(edge.label)}"|' if edge.label else ""
        lines.append(f"  {edge.source} -->{label} {edge.target}")
    return "\n".join(lines) + "\n"


def render(picture: Picture, fmt: str) -> str:
    """``picture`` as ``dot`` or ``mermaid`` text."""
    if fmt == "dot":
        return to_dot(picture)
    if fmt == "mermaid":
        return to_mermaid(picture)
    raise ValueError(f"unknown picture format {fmt!r} (choose from {', '.join(FORMATS)})")
