"""Batched loading of the call graph for dataflow walks.

A walk asks for what it needs (:class:`Need`); :meth:`GraphLoader.load` then fetches every
pending need of a kind with one ``IN (...)`` query (chunked for very large sets) and keeps
the answers, so nothing is read twice during one walk.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.orm import Session

from ledgerflow.ledger.schema import Argument, Call, CallEdge, File, TaskDef, Value, ValueEdge

CHUNK = 2000


class Need(NamedTuple):
    kind: str  # call | children | producers | holders | elements
    key: str


class CallRow(NamedTuple):
    hash: str
    task_hash: str
    task_name: str
    args_hash: str
    value_hash: str
    created_at: datetime | None


class ArgRow(NamedTuple):
    position: int
    key: str | None
    value_hash: str


class ValueRow(NamedTuple):
    hash: str
    type_name: str | None
    preview: str | None
    path: str | None


_CALL_COLUMNS = (Call.hash, Call.task_hash, TaskDef.name, Call.args_hash, Call.value_hash, Call.created_at)
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)

# Built once: executing a prepared statement skips SQLAlchemy's per-query construction cost,
# which dominates on walks of many small levels.
_CALLS_WITH_ARGS = (
    select(*_CALL_COLUMNS, Argument.position, Argument.key, Argument.value_hash)
    .join(TaskDef, TaskDef.hash == Call.task_hash)
    .outerjoin(Argument, Argument.args_hash == Call.args_hash)
    .where(Call.hash.in_(_KEYS))
    .order_by(Call.hash, Argument.position)
)
_PARENTS = (
    select(CallEdge.child_hash, CallEdge.parent_hash)
    .join(Call, Call.hash == CallEdge.parent_hash)
    .where(CallEdge.child_hash.in_(_KEYS))
    .order_by(Call.created_at.desc(), CallEdge.parent_hash)
)
_CHILDREN = (
    select(CallEdge.parent_hash, *_CALL_COLUMNS)
    .join(Call, Call.hash == CallEdge.child_hash)
    .join(TaskDef, TaskDef.hash == Call.task_hash)
    .where(CallEdge.parent_hash.in_(_KEYS))
    .order_by(CallEdge.parent_hash, CallEdge.position)
)
_PRODUCERS = (
    select(*_CALL_COLUMNS)
    .join(TaskDef, TaskDef.hash == Call.task_hash)
    .where(Call.value_hash.in_(_KEYS))
    .order_by(Call.created_at.desc(), Call.hash)
)
_ELEMENTS = select(ValueEdge.parent_hash, ValueEdge.position, ValueEdge.child_hash).where(
    ValueEdge.parent_hash.in_(_KEYS)
)
_HOLDERS = select(ValueEdge.child_hash, ValueEdge.parent_hash).where(ValueEdge.child_hash.in_(_KEYS))
_CONSUMERS = (
    select(Argument.position, Argument.key, Argument.value_hash, *_CALL_COLUMNS)
    .join(Call, Call.args_hash == Argument.args_hash)
    .join(TaskDef, TaskDef.hash == Call.task_hash)
    .where(Argument.value_hash.in_(_KEYS))
    .order_by(Call.created_at, Call.hash, Argument.position)
    .limit(bindparam("limit"))
)
_PARAMS = select(TaskDef.hash, TaskDef.source).where(TaskDef.hash.in_(_KEYS))
_VALUES = (
    select(Value.hash, Value.type_name, Value.preview, File.path)
    .outerjoin(File, File.hash == Value.hash)
    .where(Value.hash.in_(_KEYS))
)


def _chunks(keys: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(keys))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


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
        self.calls: dict[str, CallRow] = {}
        self.args: dict[str, tuple[ArgRow, ...]] = {}  # by call hash
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
        for kind, keys in wanted.items():
            getattr(self, f"_load_{kind}")(keys)

    def _rows(self, stmt: Any, keys: list[str], **params: Any) -> list[Any]:
        self.queries += 1
        if self._conn is None:
            self._conn = self.session.connection()
        return list(self._conn.execute(stmt, {"keys": keys, **params}))

    def _keep_call(self, row: Any) -> CallRow:
        call = CallRow(*row[:6])
        self.calls[call.hash] = call
        return call

    # -- loaders -----------------------------------------------------------------------

    def _load_call(self, keys: set[str]) -> None:
        keys = keys - self.full
        for chunk in _chunks(keys):
            args: dict[str, list[ArgRow]] = {}
            for row in self._rows(_CALLS_WITH_ARGS, chunk):
                call = self._keep_call(row)
                found = args.setdefault(call.hash, [])
                if row[6] is not None:
                    found.append(ArgRow(row[6], row[7], row[8]))
            parents: dict[str, list[str]] = {}
            for child, parent in self._rows(_PARENTS, chunk):
                parents.setdefault(child, []).append(parent)
            for key in chunk:
                self.args[key] = tuple(args.get(key, ()))
                self.parents[key] = tuple(dict.fromkeys(parents.get(key, ())))
        self.full |= keys

    def _load_children(self, keys: set[str]) -> None:
        for chunk in _chunks(keys):
            children: dict[str, list[str]] = {key: [] for key in chunk}
            for row in self._rows(_CHILDREN, chunk):
                children[row[0]].append(self._keep_call(row[1:]).hash)
            self.children.update({k: tuple(dict.fromkeys(v)) for k, v in children.items()})

    def _load_producers(self, keys: set[str]) -> None:
        for chunk in _chunks(keys):
            found: dict[str, list[str]] = {key: [] for key in chunk}
            for row in self._rows(_PRODUCERS, chunk):
                call = self._keep_call(row)
                found[call.value_hash].append(call.hash)
            self.producers.update({k: tuple(v) for k, v in found.items()})

    def _load_holders(self, keys: set[str]) -> None:
        for chunk in _chunks(keys):
            found: dict[str, list[str]] = {key: [] for key in chunk}
            for child, parent in self._rows(_HOLDERS, chunk):
                found[child].append(parent)
            self.holders.update({k: tuple(sorted(set(v))) for k, v in found.items()})

    def _load_elements(self, keys: set[str]) -> None:
        for chunk in _chunks(keys):
            found: dict[str, list[tuple[str, str]]] = {key: [] for key in chunk}
            for parent, position, child in self._rows(_ELEMENTS, chunk):
                found[parent].append((position, child))
            self.elements.update({k: tuple(sorted(v, key=_position_key)) for k, v in found.items()})

    # -- downstream and display --------------------------------------------------------

    def consumers(self, values: Iterable[str], limit: int) -> list[tuple[ArgRow, CallRow]]:
        """(argument, call) pairs where the call took one of ``values`` as an argument,
        oldest call first, at most ``limit`` of them."""
        found: list[tuple[ArgRow, CallRow]] = []
        for chunk in _chunks(values):
            if len(found) >= limit:
                break
            for row in self._rows(_CONSUMERS, chunk, limit=limit - len(found)):
                found.append((ArgRow(*row[:3]), self._keep_call(row[3:])))
        return found

    def ensure_calls(self, calls: Iterable[str]) -> None:
        self.request(Need("call", c) for c in calls)
        self.load()

    def param(self, call: str, arg: ArgRow) -> str:
        """The name of a call's argument: its keyword, else the task's parameter name."""
        if arg.key:
            return arg.key
        row = self.calls.get(call)
        names = self._params.get(row.task_hash, []) if row else []
        return names[arg.position] if arg.position < len(names) else f"arg{arg.position}"

    def load_params(self, calls: Iterable[str]) -> None:
        tasks = {self.calls[c].task_hash for c in calls if c in self.calls} - set(self._params)
        for chunk in _chunks(tasks):
            for task_hash, source in self._rows(_PARAMS, chunk):
                self._params[task_hash] = parameter_names(source)

    def values(self, hashes: Iterable[str]) -> dict[str, ValueRow]:
        found: dict[str, ValueRow] = {}
        for chunk in _chunks(hashes):
            for row in self._rows(_VALUES, chunk):
                found[row[0]] = ValueRow(*row)
        return found
