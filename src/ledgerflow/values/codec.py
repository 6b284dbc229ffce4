"""Turning task results into bytes for the ledger and back.

Plain data is stored in formats that load without running code: compact JSON when JSON
round-trips it exactly (None, bool, int up to 64 bits, finite float, str, list, dict with
str keys), tagged JSON (``tjson``) for the rest of plain data (tuples, bytes, sets, big
ints, non-finite floats, dicts with other keys, ``File`` values, and arrays and frames
nested in them), raw ``.npy`` for a numpy array and Parquet for a pandas frame. Anything
else is pickled (protocol 5). Unpickling runs code: the engine loads a pickle only when its
writer is trusted (see :mod:`ledgerflow.values.integrity`).
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Any, NamedTuple

from ledgerflow.errors import IntegrityError, SerializationError
from ledgerflow.hashing import type_name
from ledgerflow.values import _plain
from ledgerflow.values.preview import preview

JSON = "json"
TJSON = _plain.TJSON
NPY = _plain.NPY
PARQUET = _plain.PARQUET
PICKLE = "pickle"
#: Formats that load without running code.
SAFE_FORMATS = (JSON, TJSON, NPY, PARQUET)
FORMATS = (*SAFE_FORMATS, PICKLE)

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


def encode(obj: Any, digest: str | None = None) -> Encoded:
    """Bytes, format, type name and preview of ``obj``; raises SerializationError if
    impossible. ``digest`` (the value's hash, when known) spares hashing a frame twice."""
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
        fmt, data = _safe(obj, t, digest)
    if data is None:
        fmt = PICKLE
        data = _pickle(obj)
    return Encoded(fmt, data, type_name(t), preview(obj), len(data))


def _safe(obj: Any, t: type, digest: str | None) -> tuple[str, bytes | None]:
    module = t.__module__
    if module == "numpy" and t.__name__ == "ndarray":
        return NPY, _plain.npy_bytes(obj)
    if module.startswith("pandas") and t.__name__ == "DataFrame":
        return PARQUET, _plain.parquet_bytes(obj, digest)
    return TJSON, _plain.tjson_bytes(obj)


def decode(format: str, data: bytes) -> Any:
    """The value stored as ``data``, unchecked: pickles are loaded whoever wrote them, so
    load stored values through :func:`ledgerflow.values.integrity.load_stored`."""
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
    if format in SAFE_FORMATS:
        return _plain.read(format, data)
    raise IntegrityError(f"unknown stored value format {format!r} (expected one of {FORMATS})")
