"""Large arrays and bytes in a real run go to the value store and come back as streams:
the run never holds a second copy of them, and changed stored bytes are never used."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ledgerflow import task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.engine import execute
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.values.store import CHUNK_SIZE

MB = 1024 * 1024
#: Beside the value itself: chunks and encoder pieces in flight, and the run's own rows.
IN_FLIGHT = 8 * CHUNK_SIZE
CALLS: list[str] = []


@task
def array_of(mb: int) -> Any:
    CALLS.append("array")
    return np.random.default_rng(mb).random(mb * MB // 8)


@task
def bytes_of(mb: int) -> bytes:
    CALLS.append("bytes")
    return os.urandom(mb * MB)


def _settings(root: Path, entry: dict[str, Any], store: str | None) -> Settings:
    values: dict[str, Any] = {"inline_max_bytes": 1000}
    if store is not None:
        values["store"] = store
    path = root / "ledgerflow.yml"
    path.write_text(yaml.safe_dump({"databases": {"default": entry}, "values": values}))
    return load_settings(path)


def _traced(settings: Settings, expr: Any) -> tuple[Any, int]:
    CALLS.clear()
    tracemalloc.start()
    try:
        result = execute(expr, settings=settings, executor="local")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "done", result.failures
    return result, peak


@pytest.mark.parametrize("database_dialect", ["sqlite"])
@pytest.mark.parametrize("store", [None, "ledger"], ids=["folder", "ledger"])
@pytest.mark.parametrize("kind", ["array", "bytes"])
def test_a_large_value_is_held_once_when_written_and_when_read(
    kind: str, store: str | None, migrated_database_entry: dict[str, Any], tmp_path: Path
) -> None:
    settings = _settings(tmp_path, migrated_database_entry, store)
    make = array_of if kind == "array" else bytes_of
    size = 48 * MB
    first, written = _traced(settings, make(48))
    assert [kind] == CALLS
    assert written < size + IN_FLIGHT  # the value the task made, and pieces in flight
    again, read = _traced(settings, make(48))
    assert CALLS == [] and again.counts["cached"] == 1
    assert read < size + IN_FLIGHT
    if kind == "array":
        assert np.array_equal(again.value, first.value)
    else:
        assert again.value == first.value
    rows = LedgerRows(settings)
    [row] = [r for r in rows.rows("lf_value") if r["store_key"]]
    rows.close()
    assert row["format"] == ("npy" if kind == "array" else "tjson")


@pytest.mark.parametrize("database_dialect", ["sqlite"])
@pytest.mark.parametrize("kind", ["array", "bytes"])
def test_changed_bytes_of_a_streamed_value_are_never_used(
    kind: str, migrated_database_entry: dict[str, Any], tmp_path: Path
) -> None:
    settings = _settings(tmp_path, migrated_database_entry, None)
    make = array_of if kind == "array" else bytes_of
    first = execute(make(1), settings=settings, executor="local")
    rows = LedgerRows(settings)
    [row] = [r for r in rows.rows("lf_value") if r["store_key"]]
    rows.close()
    key = row["store_key"]
    path = tmp_path / ".ledgerflow" / "values" / key[:2] / key[2:]
    data = bytearray(path.read_bytes())
    data[-100] = ord("A") if data[-100] != ord("A") else ord("B")  # same length, one change
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    CALLS.clear()
    again = execute(make(1), settings=settings, executor="local")
    assert again.status == "done" and [kind] == CALLS  # computed again, not loaded
    if kind == "array":
        assert np.array_equal(again.value, first.value)
