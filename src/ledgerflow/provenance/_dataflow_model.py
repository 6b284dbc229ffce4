"""The shapes of a traced dataflow (see :mod:`ledgerflow.provenance.dataflow`): its values,
calls and edges, and the sections and uses the walk collects before they are rendered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledgerflow.provenance._graph import ArgFacts
from ledgerflow.provenance.records import _plain


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
