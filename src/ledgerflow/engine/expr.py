"""Finding lazy calls inside values and replacing them by their results.

Calls may sit anywhere inside lists, tuples (named tuples too), dicts (as values) and
dataclass instances. Other objects are opaque. Containers without calls are returned
unchanged, so their identity (and any memoised hash) is kept.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from ledgerflow.engine.task import Call

ATOMS: frozenset[type] = frozenset(
    {int, float, str, bytes, bool, type(None), complex, bytearray, range}
)


def _fields(obj: Any) -> list[str] | None:
    fields = getattr(type(obj), "__dataclass_fields__", None)
    if fields is None or isinstance(obj, type):
        return None
    return [f.name for f in dataclasses.fields(obj)]


def find_calls(obj: Any, out: list[Call] | None = None) -> list[Call]:
    """The calls nested in ``obj``, in order (not looking inside the calls themselves)."""
    if out is None:
        out = []
    kind = type(obj)
    if kind in ATOMS:
        return out
    if kind is Call:
        out.append(obj)
    elif kind is list or kind is tuple:
        for item in obj:
            if type(item) is Call:
                out.append(item)
            elif type(item) not in ATOMS:
                find_calls(item, out)
    elif kind is dict:
        for item in obj.values():
            if type(item) is Call:
                out.append(item)
            elif type(item) not in ATOMS:
                find_calls(item, out)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            find_calls(item, out)
    elif isinstance(obj, dict):
        for item in obj.values():
            find_calls(item, out)
    else:
        names = _fields(obj)
        if names:
            for name in names:
                find_calls(getattr(obj, name), out)
    return out


def has_calls(obj: Any) -> bool:
    return type(obj) not in ATOMS and bool(find_calls(obj))


def substitute(obj: Any, result_of: Callable[[Call], Any]) -> Any:
    """``obj`` with every nested call replaced by ``result_of(call)``."""
    kind = type(obj)
    if kind in ATOMS:
        return obj
    if kind is Call:
        return result_of(obj)
    if isinstance(obj, (list, tuple)):
        items = [substitute(item, result_of) for item in obj]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        if kind is list:
            return items
        if kind is tuple:
            return tuple(items)
        if hasattr(obj, "_fields"):
            return kind(*items)
        return kind(items)
    if isinstance(obj, dict):
        pairs = {key: substitute(value, result_of) for key, value in obj.items()}
        if all(pairs[key] is value for key, value in obj.items()):
            return obj
        if kind is dict:
            return pairs
        new = copy.copy(obj)
        new.update(pairs)
        return new
    names = _fields(obj)
    if not names:
        return obj
    changed = {}
    for name in names:
        value = getattr(obj, name)
        new_value = substitute(value, result_of)
        if new_value is not value:
            changed[name] = new_value
    if not changed:
        return obj
    new = copy.copy(obj)
    for name, value in changed.items():
        object.__setattr__(new, name, value)
    return new
