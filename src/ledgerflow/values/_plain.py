"""Plain data in formats that load without running code.

``tjson`` is JSON in which what JSON cannot say is written as a one-key object whose key
starts with ``$``: ``{"$tuple": [...]}``, ``{"$bytes": "<base64>"}``, ``{"$int": "<hex>"}``
(beyond 64 bits), ``{"$float": "nan"}``, ``{"$dict": [[key, value], ...]}`` (keys that are
not strings, or start with ``$``), sets, complex numbers, ``File`` values, and numpy arrays
(``.npy`` bytes, loaded with ``allow_pickle=False``) and pandas frames (Parquet) in base64.
A top-level array is stored as raw ``.npy`` bytes, a top-level frame as raw Parquet.

Every encoder returns None for an object it cannot represent exactly; the caller then
pickles it. numpy, pandas and pyarrow are imported only when such a value is met.
"""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

from ledgerflow.errors import IntegrityError
from ledgerflow.values.file import File

TJSON = "tjson"
NPY = "npy"
PARQUET = "parquet"

_MAX_INT_BITS = 64
_ENCODER = json.JSONEncoder(
    ensure_ascii=True, check_circular=False, allow_nan=False, separators=(",", ":")
)


class _NotPlain(Exception):
    """The value holds something no safe format can represent exactly."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"$float": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def _tagged(obj: Any) -> Any:
    """``obj`` as JSON-ready data with tags; raises _NotPlain."""
    t = type(obj)
    if obj is None or t is bool or t is str:
        return obj
    if t is int:
        return obj if obj.bit_length() <= _MAX_INT_BITS else {"$int": format(obj, "x")}
    if t is float:
        return _float(obj)
    if t is list:
        return [_tagged(item) for item in obj]
    if t is dict:
        if all(type(k) is str and not k.startswith("$") for k in obj):
            return {k: _tagged(v) for k, v in obj.items()}
        return {"$dict": [[_tagged(k), _tagged(v)] for k, v in obj.items()]}
    if t is tuple:
        return {"$tuple": [_tagged(item) for item in obj]}
    if t is bytes:
        return {"$bytes": _b64(obj)}
    if t is bytearray:
        return {"$bytearray": _b64(bytes(obj))}
    if t is set or t is frozenset:
        return {"$" + t.__name__: [_tagged(item) for item in obj]}
    if t is complex:
        return {"$complex": [_float(obj.real), _float(obj.imag)]}
    if t is File:
        return {"$file": obj.path}
    module = t.__module__
    if module == "numpy" and t.__name__ == "ndarray":
        data = npy_bytes(obj)
        if data is not None:
            return {"$npy": _b64(data)}
    elif module.startswith("pandas") and t.__name__ == "DataFrame":
        data = parquet_bytes(obj)
        if data is not None:
            return {"$parquet": _b64(data)}
    raise _NotPlain


def tjson_bytes(obj: Any) -> bytes | None:
    """``obj`` as tagged JSON, or None when it is not plain data."""
    try:
        return _ENCODER.encode(_tagged(obj)).encode("ascii")
    except (_NotPlain, RecursionError):
        return None


def npy_bytes(arr: Any) -> bytes | None:
    """A numpy array as ``.npy`` bytes (None for object arrays, which need pickle)."""
    import numpy as np

    if type(arr) is not np.ndarray or arr.dtype.hasobject:
        return None
    buffer = io.BytesIO()
    try:
        np.save(buffer, arr, allow_pickle=False)
    except ValueError:
        return None
    return buffer.getvalue()


def parquet_bytes(frame: Any, digest: str | None = None) -> bytes | None:
    """A pandas frame as Parquet, when it reads back to the same content (checked against
    ``digest``, or the frame's own hash); None otherwise or when pyarrow is missing."""
    from ledgerflow.hashing import hash_value

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, engine="pyarrow")
        data = buffer.getvalue()
        back = _read_parquet(data)
        if hash_value(back) != (digest or hash_value(frame)):
            return None
    except Exception:  # columns Parquet cannot hold (mixed objects, non-string names...)
        return None
    return data


def _read_npy(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def _read_parquet(data: bytes) -> Any:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        return obj
    ((tag, body),) = obj.items()
    if not tag.startswith("$"):
        return obj
    reader = _TAGS.get(tag)
    if reader is None:
        raise IntegrityError(f"a stored tjson value holds an unknown tag {tag[:40]!r}")
    return reader(body)


_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_TAGS: dict[str, Any] = {
    "$int": lambda s: int(s, 16),
    "$float": lambda s: _SPECIAL[s],
    "$tuple": tuple,
    "$dict": lambda pairs: dict(pairs),
    "$bytes": base64.b64decode,
    "$bytearray": lambda s: bytearray(base64.b64decode(s)),
    "$set": set,
    "$frozenset": frozenset,
    "$complex": lambda parts: complex(*parts),
    "$file": File,
    "$npy": lambda s: _read_npy(base64.b64decode(s)),
    "$parquet": lambda s: _read_parquet(base64.b64decode(s)),
}
_DECODER = json.JSONDecoder(object_hook=_hook)


def read(fmt: str, data: bytes) -> Any:
    """Load a value stored in one of the safe formats; IntegrityError when the bytes are not
    a value of that format."""
    try:
        if fmt == TJSON:
            return _DECODER.decode(data.decode("utf-8"))
        if fmt == NPY:
            return _read_npy(data)
        if fmt == PARQUET:
            return _read_parquet(data)
    except IntegrityError:
        raise
    except ImportError as exc:
        raise IntegrityError(
            f"a stored {fmt} value needs the Python package '{exc.name}', which is not installed",
            hint=f"pip install {exc.name}",
        ) from exc
    except Exception as exc:
        raise IntegrityError(f"a stored {fmt} value is corrupt: {type(exc).__name__}: {exc}") from exc
    raise IntegrityError(f"unknown stored value format {fmt!r}")
