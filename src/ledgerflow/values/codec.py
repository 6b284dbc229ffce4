"""Turning task results into bytes for the ledger and back.

Plain data that JSON round-trips exactly (None, bool, int up to 64 bits, finite float, str,
list, dict with str keys, no shared or nested-in-itself containers) is stored as compact JSON
in insertion order; everything else as pickle protocol 5. Pickled bytes are only ever loaded
through :func:`decode_verified` by the engine, which checks their HMAC signature first.
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Any, NamedTuple

from ledgerflow.errors import IntegrityError, SerializationError
from ledgerflow.hashing import type_name
from ledgerflow.values.preview import preview
from ledgerflow.values.signing import verify

JSON = "json"
PICKLE = "pickle"
FORMATS = (JSON, PICKLE)

_ENCODER = json.JSONEncoder(
    ensure_ascii=True, check_circular=False, allow_nan=False, separators=(",", ":")
)
_DECODER = json.JSONDecoder()
_MAX_JSON_INT_BITS = 64


class Encoded(NamedTuple):
    """A value ready to store: its bytes, their format, and what to show about it."""

    format: str
    data: bytes
    type_name: str
    preview: str
    size: int


def _json_scalar(item: Any, t: type) -> bool | None:
    """True/False for a scalar that JSON does/does not round-trip, None for anything else."""
    if t is str or t is bool or item is None:
        return True
    if t is int:
        return item.bit_length() <= _MAX_JSON_INT_BITS
    if t is float:
        return math.isfinite(item)
    return None


def _json_exact(obj: Any) -> bool:
    """Whether ``json.loads(json.dumps(obj))`` gives back exactly ``obj`` (types included)."""
    stack = [obj]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        t = type(item)
        if t is list:
            children = item
        elif t is dict:
            if not all(type(key) is str for key in item):
                return False
            children = item.values()
        else:
            scalar = _json_scalar(item, t)
            if scalar is None or not scalar:
                return False
            continue
        if id(item) in seen:
            return False
        seen.add(id(item))
        for child in children:
            ct = type(child)
            if ct is str or ct is bool or child is None:
                continue
            if ct is int and child.bit_length() <= _MAX_JSON_INT_BITS:
                continue
            stack.append(child)
    return True


def _pickle(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception as exc:
        raise SerializationError(
            f"cannot serialise a value of type {type_name(type(obj))}: {exc}",
            hint="return plain data, dataclasses, File values or other picklable objects",
        ) from exc


def encode(obj: Any) -> Encoded:
    """Bytes, format, type name and preview of ``obj``; raises SerializationError if impossible."""
    data: bytes | None = None
    fmt = JSON
    t = type(obj)
    if t is int and obj.bit_length() <= _MAX_JSON_INT_BITS:
        data = b"%d" % obj
    elif _json_exact(obj):
        try:
            data = _ENCODER.encode(obj).encode("ascii")
        except RecursionError:
            data = None
    if data is None:
        fmt = PICKLE
        data = _pickle(obj)
    return Encoded(fmt, data, type_name(t), preview(obj), len(data))


def decode(format: str, data: bytes) -> Any:
    """The value stored as ``data``. Unchecked: use :func:`decode_verified` for stored values."""
    if format == JSON:
        try:
            return _DECODER.decode(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise IntegrityError(f"a stored JSON value is corrupt: {exc}") from exc
    if format == PICKLE:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise SerializationError(
                f"cannot load a stored value: {type(exc).__name__}: {exc}",
                hint="the class it was made from may have been renamed or removed; "
                "rerun the task without its cache (--rerun TASK)",
            ) from exc
    raise IntegrityError(f"unknown stored value format {format!r} (expected one of {FORMATS})")


def decode_verified(format: str, data: bytes, signature: str | None, key: bytes) -> Any:
    """Like :func:`decode`, after checking ``signature``; never unpickles unsigned bytes."""
    if not verify(data, signature, key):
        raise IntegrityError(
            f"a stored {format} value ({len(data)} bytes) failed its signature check, "
            "so it was not loaded",
            hint="it was changed outside ledgerflow or signed with another key "
            "($LEDGERFLOW_SIGNING_KEY / .ledgerflow/signing.key)",
        )
    return decode(format, data)
