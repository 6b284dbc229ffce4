"""Fingerprints for numpy arrays and scalars; imported only once a numpy value is hashed."""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import numpy as np

from ledgerflow.hashing.canonical import fingerprint, hash_value
from ledgerflow.hashing.digest import DIGEST_SIZE


def array_digest(arr: np.ndarray[Any, Any], tag: bytes = b"numpy.ndarray") -> str:
    """Hash of dtype, shape and the bytes in C order (object arrays: their elements)."""
    dtype = arr.dtype
    dtype_text = repr(dtype.descr) if dtype.fields is not None else dtype.str
    shape = ",".join(map(str, arr.shape))
    if dtype.hasobject:
        return hash_value((tag.decode(), dtype_text, shape, arr.tolist()))
    h = blake2b(b"%s;%s;%s;" % (tag, dtype_text.encode(), shape.encode()), digest_size=DIGEST_SIZE)
    flat = np.ascontiguousarray(arr).reshape(-1)
    try:
        h.update(flat.view(np.uint8))  # type: ignore[arg-type]
    except (TypeError, ValueError, BufferError):
        h.update(flat.tobytes())
    return h.hexdigest()


@fingerprint.register(np.ndarray)
def _ndarray(arr: np.ndarray[Any, Any]) -> str:
    if isinstance(arr, np.ma.MaskedArray):
        return hash_value(
            ("numpy.ma", array_digest(arr.data), array_digest(np.ma.getmaskarray(arr)))
        )
    return array_digest(arr)


@fingerprint.register(np.generic)
def _scalar(value: np.generic) -> str:
    return array_digest(np.asarray(value), tag=b"numpy.scalar")
