"""A large ``bytes`` value is hashed where it is: the same digest, no copy of it."""

from __future__ import annotations

import tracemalloc
from hashlib import blake2b

from ledgerflow.hashing import hash_value
from ledgerflow.hashing.canonical import _LEAF


def test_large_bytes_hash_as_their_encoding_does() -> None:
    for size in (0, 100, 65_536, 65_537, 3_000_001):
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        expected = blake2b(_LEAF[bytes](data), digest_size=20).hexdigest()
        assert hash_value(data) == expected, size


def test_hashing_large_bytes_allocates_no_copy_of_them() -> None:
    data = b"\x01" * 20_000_000
    tracemalloc.start()
    try:
        hash_value(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
