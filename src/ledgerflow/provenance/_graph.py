"""Batched loading of the call graph for dataflow walks.

A walk asks for what it needs (:class:`Need`); :meth:`GraphLoader.load` then fetches every
pending need with one statement: a ``UNION ALL`` of one ``IN (...)`` select per kind asked
(chunked for very large sets). Answers are kept, so nothing is read twice during one walk.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    DateTime,
    Integer,
    String,
    bindparam,
    cast,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from ledgerflow.db.chunks import chunks
from ledgerflow.ledger.schema import Argument, CallEdge, CallRow, FileRow, TaskDef, Value, ValueEdge


class Need(NamedTuple):
    kind: str  # call | children | producers | holders | elements
    key: str


class CallFacts(NamedTuple):
    """What a dataflow walk reads of a call (a row of its query, not an ORM object)."""

    hash: str
    task_hash: str
    task_name: str
    args_hash: str
    value_hash: str
    created_at: datetime | None


class ArgFacts(NamedTuple):
    position: int
    key: str | None
    value_hash: str


class ValueFacts(NamedTuple):
    hash: str
    type_name: str | None
    preview: str | None
    path: str | None


_CALL_COLUMNS = (CallRow.hash, CallRow.task_hash, TaskDef.name, CallRow.args_hash, CallRow.value_hash, CallRow.created_at)
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)
_TEXT, _WHEN = String(), DateTime(timezone=True)


def _none(type_: Any) -> Any:
    return cast(null(), type_)


def _part(kind: str, *columns: Any) -> Any:
    """One kind's select in the uniform layout (kind, key, s1..s6, n1, t1) of a round."""
    padded = list(columns) + [None] * (9 - len(columns))
    types = [_TEXT] * 7 + [Integer(), _WHEN]
    return [literal_column(f"'{kind}'", _TEXT).label("kind")] + [
        (_none(type_) if column is None else column).label(f"c{i}")
        for i, (column, type_) in enumerate(zip(padded, types, strict=True))
    ]


def _keys(kind: str) -> BindParameter[Any]:
    return bindparam(f"keys_{kind}", expanding=True)


_Parent = aliased(CallRow)
#: Per kind of need, its part of a round's ``UNION ALL``: built once, so a round costs one
#: statement (one round trip) whatever kinds it asks for; SQLAlchemy caches the compiled union.
_PARTS: dict[str, Any] = {
    # key=call; s1 task_hash, s2 task name, s3 args_hash, s4 value_hash, s5 arg key, s6 arg value, n1 position
    "call": select(*_part("call", CallRow.hash, CallRow.task_hash, TaskDef.name, CallRow.args_hash, CallRow.value_hash,
                          Argument.key, Argument.value_hash, Argument.position, CallRow.created_at))
    .join(TaskDef, TaskDef.hash == CallRow.task_hash)
    .outerjoin(Argument, Argument.args_hash == CallRow.args_hash)
    .where(CallRow.hash.in_(_keys("call"))),
    # key=child; s1 parent; t1 parent created_at
    "parents": select(*_part("parents", CallEdge.child_hash, CallEdge.parent_hash, None, None, None, None,
                             None, None, _Parent.created_at))
    .join(_Parent, _Parent.hash == CallEdge.parent_hash)
    .where(CallEdge.child_hash.in_(_keys("parents"))),
    # key=parent; s1..s4 as for calls, s5 child hash, n1 edge position
    "children": select(*_part("children", CallEdge.parent_hash, CallRow.task_hash, TaskDef.name, CallRow.args_hash,
                              CallRow.value_hash, CallRow.hash, None, CallEdge.position, CallRow.created_at))
    .join(CallRow, CallRow.hash == CallEdge.child_hash)
    .join(TaskDef, TaskDef.hash == CallRow.task_hash)
    .where(CallEdge.parent_hash.in_(_keys("children"))),
    # key=value; s1..s4 as for calls, s5 call hash
    "producers": select(*_part("producers", CallRow.value_hash, CallRow.task_hash, TaskDef.name, CallRow.args_hash,
                               CallRow.value_hash, CallRow.hash, None, None, CallRow.created_at))
    .join(TaskDef, TaskDef.hash == CallRow.task_hash)
    .where(CallRow.value_hash.in_(_keys("producers"))),
    # key=value; s1 a value holding it
    "holders": select(*_part("holders", ValueEdge.child_hash, ValueEdge.parent_hash))
    .where(ValueEdge.child_hash.in_(_keys("holders"))),
    # key=container; s1 element, s5 position
    "elements": select(*_part("elements", ValueEdge.parent_hash, ValueEdge.child_hash, None, None, None,
                              ValueEdge.position))
    .where(ValueEdge.parent_hash.in_(_keys("elements"))),
}
_ROUNDS: dict[tuple[str, ...], Any] = {}


def _round(kinds: tuple[str, ...]) -> Any:
    stmt = _ROUNDS.get(kinds)
    if stmt is None:
        parts = [_PARTS[kind] for kind in kinds]
        stmt = _ROUNDS[kinds] = parts[0] if len(parts) == 1 else union_all(*parts)
    return stmt


_CONSUMERS = (
    select(Argument.position, Argument.key, Argument.value_hash, *_CALL_COLUMNS)
    .join(CallRow, CallRow.args_hash == Argument.args_hash)
    .join(TaskDef, TaskDef.hash == CallRow.task_hash)
    .where(Argument.value_hash.in_(_KEYS))
    .order_by(CallRow.created_at, CallRow.hash, Argument.position)
    .limit(bindparam("limit"))
)
_PARAMS = select(TaskDef.hash, TaskDef.source).where(TaskDef.hash.in_(_KEYS))
_VALUES = (
    select(Value.hash, Value.type_name, Value.preview, FileRow.path)
    .outerjoin(FileRow, FileRow.hash == Value.hash)
    .where(Value.hash.in_(_KEYS))
)


def _newest_first(moment: datetime | None) -> float:
    return -moment.timestamp() if moment is not None else 0.0


def _position_key(item: tuple[str, str]) -> tuple[int, int, str]:
    position = item[0]
    return (0, int(position), "") if position.isdigit() else (1, 0, position)


def parameter_names(source: str | None) -> list[str]:
    """The parameters of the first function defined in a task's source, in order."""
    if not source:
        return []
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            names = [a.arg for a in (*args.posonlyargs, *args.args)]
            if args.vararg:
                names.append(args.vararg.arg)
            return names + [a.arg for a in args.kwonlyargs]
    return []


class GraphLoader:
    """What a walk has learnt about calls and values so far."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.calls: dict[str, CallFacts] = {}
        self.args: dict[str, tuple[ArgFacts, ...]] = {}  # by call hash
        self.parents: dict[str, tuple[str, ...]] = {}  # latest parent first
        self.children: dict[str, tuple[str, ...]] = {}  # in call order
        self.producers: dict[str, tuple[str, ...]] = {}  # latest first
        self.holders: dict[str, tuple[str, ...]] = {}  # value -> values holding it
        self.elements: dict[str, tuple[tuple[str, str], ...]] = {}  # value -> (position, value)
        self.full: set[str] = set()  # calls whose args and parents are loaded
        self.queries = 0
        self._conn: Any = None
        self._params: dict[str, list[str]] = {}
        self._wanted: dict[str, set[str]] = {}

    # -- requests ----------------------------------------------------------------------

    def _has(self, need: Need) -> bool:
        if need.kind == "call":
            return need.key in self.full
        return need.key in getattr(self, need.kind)

    def request(self, needs: Iterable[Need]) -> bool:
        """Remember what is missing; True when something must be loaded first."""
        missing = False
        for need in needs:
            if not self._has(need):
                self._wanted.setdefault(need.kind, set()).add(need.key)
                missing = True
        return missing

    def load(self) -> None:
        wanted, self._wanted = self._wanted, {}
        wanted["call"] = wanted.get("call", set()) - self.full
        if wanted["call"]:
            wanted["parents"] = set(wanted["call"])
        batches = {kind: list(chunks(keys)) for kind, keys in wanted.items() if keys}
        found: dict[str, dict[str, list[Any]]] = {kind: {} for kind in batches}
        for i in range(max((len(b) for b in batches.values()), default=0)):
            kinds = tuple(sorted(kind for kind, b in batches.items() if i < len(b)))
            params = {f"keys_{kind}": batches[kind][i] for kind in kinds}
            for row in self._rows(_round(kinds), params):
                found[row[0]].setdefault(row[1], []).append(row)
        for kind, pieces in batches.items():
            keys = [key for chunk in pieces for key in chunk]
            getattr(self, f"_keep_{kind}")(keys, found[kind])
        self.full |= wanted["call"]

    def _rows(self, stmt: Any, params: dict[str, Any]) -> list[Any]:
        self.queries += 1
        if self._conn is None:
            self._conn = self.session.connection()
        return list(self._conn.execute(stmt, params))

    def _keep_call(self, keys: list[str], rows: dict[str, list[Any]]) -> None:
        for key in keys:
            found = rows.get(key, [])
            if found:
                row = found[0]
                self.calls[key] = CallFacts(key, row[2], row[3], row[4], row[5], row[9])
            args = [ArgFacts(r[8], r[6], r[7]) for r in found if r[7] is not None]
            self.args[key] = tuple(sorted(args))

    def _keep_parents(self, keys: list[str], rows: dict[str, list[Any]]) -> None:
        for key in keys:
            found = sorted(rows.get(key, []), key=lambda r: (_newest_first(r[9]), r[2]))
            self.parents[key] = tuple(dict.fromkeys(r[2] for r in found))

    def _keep_children(self, keys: list[str], rows: dict[str, list[Any]]) -> None:
        for key in keys:
            found = sorted(rows.get(key, []), key=lambda r: r[8])
            for r in found:
                self.calls[r[6]] = CallFacts(r[6], r[2], r[3], r[4], r[5], r[9])
            self.children[key] = tuple(dict.fromkeys(r[6] for r in found))

    def _keep_producers(self, keys: list[str], rows: dict[str, list[Any]]) -> None:
        for key in keys:
            found = sorted(rows.get(key, []), key=lambda r: (_newest_first(r[9]), r[6]))
            for r in found:
                self.calls[r[6]] = CallFacts(r[6], r[2], r[3], r[4], r[5], r[9])
            self.producers[key] = tuple(r[6] for r in found)

    def _keep_holders(self, keys: list[str], rows: dict[str, list[Any]]) -> None:
        for key in keys:
            self.holders[key] = tuple(sorted({r[2] for r in rows.get(key, [])}))

    def _keep_elements(self, keys: list[str], rows: dict[str, list[Any]]) -> None:
        for key in keys:
            parts = [(r[6], r[2]) for r in rows.get(key, [])]
            self.elements[key] = tuple(sorted(parts, key=_position_key))

    # -- downstream and display --------------------------------------------------------

    def consumers(self, values: Iterable[str], limit: int) -> list[tuple[ArgFacts, CallFacts]]:
        """(argument, call) pairs where the call took one of ``values`` as an argument,
        oldest call first, at most ``limit`` of them."""
        found: list[tuple[ArgFacts, CallFacts]] = []
        for chunk in chunks(values):
            if len(found) >= limit:
                break
            for row in self._rows(_CONSUMERS, {"keys": chunk, "limit": limit - len(found)}):
                call = self.calls[row[3]] = CallFacts(*row[3:9])
                found.append((ArgFacts(*row[:3]), call))
        return found

    def ensure_calls(self, calls: Iterable[str]) -> None:
        self.request(Need("call", c) for c in calls)
        self.load()

    def param(self, call: str, arg: ArgFacts) -> str:
        """The name of a call's argument: its keyword, else the task's parameter name."""
        if arg.key:
            return arg.key
        row = self.calls.get(call)
        names = self._params.get(row.task_hash, []) if row else []
        return names[arg.position] if arg.position < len(names) else f"arg{arg.position}"

    def load_params(self, calls: Iterable[str]) -> None:
        tasks = {self.calls[c].task_hash for c in calls if c in self.calls} - set(self._params)
        for chunk in chunks(tasks):
            for task_hash, source in self._rows(_PARAMS, {"keys": chunk}):
                self._params[task_hash] = parameter_names(source)

    def values(self, hashes: Iterable[str]) -> dict[str, ValueFacts]:
        found: dict[str, ValueFacts] = {}
        for chunk in chunks(hashes):
            for row in self._rows(_VALUES, {"keys": chunk}):
                found[row[0]] = ValueFacts(*row)
        return found
