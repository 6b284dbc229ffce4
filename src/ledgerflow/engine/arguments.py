"""A call's arguments made concrete and hashed: the one routine a run and a dry run share.

Each argument's hash is the hash of its value: a call's result hash for an argument that
is a call, the canonical hash for an atom, and the value store's hash of the concrete
value (nested calls replaced by their results) for a container. The arguments hash is
:func:`ledgerflow.hashing.arguments_hash` of the parameter names and those hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ledgerflow.engine.expr import ATOMS, substitute
from ledgerflow.engine.task import Call, Task
from ledgerflow.hashing import arguments_hash, hash_value

if TYPE_CHECKING:
    from ledgerflow.engine.valuing import Values


class Known(Protocol):
    """A call whose result is known: its value and that value's hash."""

    value: Any
    value_hash: str | None


class Hashed(Protocol):
    """A node that receives its call's concrete arguments and their hashes."""

    call: Call
    task: Task[Any, Any]
    resolved: tuple[Any, ...]
    arg_hashes: tuple[str, ...]
    args_hash: str


def hash_arguments(
    node: Hashed,
    known: Mapping[int, Known],
    values: Values,
    result_of: Callable[[Call], Any],
    before_nested: Callable[[Any], None] | None = None,
) -> None:
    """Set ``node.resolved``, ``node.arg_hashes`` and ``node.args_hash``.

    ``known`` maps ``id(call)`` of each argument call to its settled node; ``result_of``
    gives a nested call's value; ``before_nested`` (if given) sees each container argument
    first (a run reads the cached results nested in it in one query).
    """
    resolved: list[Any] = []
    hashes: list[Any] = []  # str each (a call's result hash is known by now)
    for value in node.call.values:
        kind = type(value)
        if kind is Call:
            dep = known[id(value)]
            resolved.append(dep.value)
            hashes.append(dep.value_hash)
        elif kind in ATOMS:
            resolved.append(value)
            hashes.append(hash_value(value))
        else:
            if before_nested is not None:
                before_nested(value)
            concrete = substitute(value, result_of)
            resolved.append(concrete)
            hashes.append(values.hash(concrete))
    node.resolved = tuple(resolved)
    node.arg_hashes = tuple(hashes)
    node.args_hash = arguments_hash(node.task.param_names, hashes)
