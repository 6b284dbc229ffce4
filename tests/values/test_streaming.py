"""Encoding into and decoding from value store streams: the same bytes as the in-memory
encoders, and no second copy of a large value."""

from __future__ import annotations

import base64
import io
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ledgerflow.errors import IntegrityError
from ledgerflow.hashing import hash_bytes, hash_value
from ledgerflow.values import DirectoryStore
from ledgerflow.values.store import CHUNK_SIZE, ChunkReader, buffered
from ledgerflow.values.streaming import (
    Spool,
    read_npy,
    read_tjson_bytes,
    write_npy,
    write_tjson_bytes,
)

#: What a stream holds at a time besides the value: a few chunks and a decoded piece.
IN_FLIGHT = 6 * CHUNK_SIZE


def _chunked(data: bytes, size: int = 100_003) -> io.BufferedIOBase:
    """``data`` as a store's stream, in chunks of ``size``."""
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return buffered(ChunkReader(len(data), lambda i: pieces[i] if i < len(pieces) else None))  # type: ignore[return-value]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 1000, CHUNK_SIZE + 7])
def test_bytes_as_tagged_json_are_the_json_encoders_bytes_and_read_back(size: int) -> None:
    data = np.random.default_rng(size).bytes(size)
    out = io.BytesIO()
    write_tjson_bytes(data, out)
    expected = json.dumps({"$bytes": base64.b64encode(data).decode()}, separators=(",", ":"))
    assert out.getvalue() == expected.encode()
    assert read_tjson_bytes(_chunked(out.getvalue()), len(out.getvalue())) == data


@pytest.mark.parametrize(
    "damage", [b'{"$bytes":"AAA"}', b'{"$bytes":"AA!A"}', b'{"$byte":"AAAA"}', b'{"$bytes":"AAAA"']
)
def test_damaged_tagged_json_bytes_are_refused(damage: bytes) -> None:
    with pytest.raises(IntegrityError):
        read_tjson_bytes(_chunked(damage), len(damage))


@pytest.mark.parametrize(
    "array",
    [np.arange(10), np.zeros((0, 3)), np.arange(CHUNK_SIZE).reshape(-1, 8).T, np.array(3.5)],
    ids=["small", "empty", "fortran-order", "scalar"],
)
def test_arrays_as_npy_are_what_numpy_saves_and_read_back(array: np.ndarray) -> None:
    out = io.BytesIO()
    write_npy(array, out)
    reference = io.BytesIO()
    np.save(reference, array, allow_pickle=False)
    assert out.getvalue() == reference.getvalue()
    back = read_npy(_chunked(out.getvalue()))
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_a_spool_keeps_a_small_value_and_sends_a_large_one(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    small, large = hash_value("small"), hash_value("large")
    with Spool(100, lambda: store.writer(small)) as spool:
        spool.write(b"x" * 60)
        spool.write(b"y" * 40)
    assert spool.inline == b"x" * 60 + b"y" * 40 and not store.exists(small)
    assert spool.hexdigest() == hash_bytes(b"x" * 60 + b"y" * 40)
    with Spool(100, lambda: store.writer(large)) as spool:
        spool.write(b"x" * 60)
        spool.write(b"y" * 41)
    assert spool.inline is None and spool.size == 101
    assert store.get(large) == b"x" * 60 + b"y" * 41
    assert spool.hexdigest() == hash_bytes(store.get(large))


def test_a_spool_whose_encoder_fails_stores_nothing(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    key = hash_value("failed")
    with pytest.raises(RuntimeError), Spool(10, lambda: store.writer(key)) as spool:
        spool.write(b"z" * 100)
        raise RuntimeError("the encoder failed")
    assert not store.exists(key)


def test_writing_and_reading_a_large_array_holds_it_once(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    key = hash_value("big array")
    array = np.random.default_rng(1).random(40 * 1024 * 1024 // 8)  # 40 MiB
    tracemalloc.start()
    try:
        with Spool(1000, lambda: store.writer(key)) as spool:
            write_npy(array, spool)
        _, written = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with store.open(key) as stream:
            back = read_npy(stream)
        _, read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(back, array)
    assert written < IN_FLIGHT  # pieces in flight, never the whole array again
    assert read < array.nbytes + IN_FLIGHT  # the new array, and pieces in flight


def test_reading_large_tagged_json_bytes_holds_them_once() -> None:
    data = np.random.default_rng(2).bytes(30 * 1024 * 1024)
    out = io.BytesIO()
    write_tjson_bytes(data, out)
    stored = out.getvalue()
    stream = _chunked(stored, CHUNK_SIZE)
    tracemalloc.start()
    try:
        back = read_tjson_bytes(stream, len(stored))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert back == data
    assert peak < len(data) + IN_FLIGHT
