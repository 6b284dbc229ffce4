"""Large results of the dask executor travel by reference: the worker stores them.

A result whose pickled size is above ``by_reference_bytes`` is hashed, encoded and written
to the value store by its worker; what comes back through Dask is the ledger rows. The run's
process records them, reads the value back (checked against its content address) only where
it needs it, and records the same hashes as any other executor.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import ledgerflow
from ledgerflow import task
from ledgerflow.config.settings import Settings
from ledgerflow.engine.executor import Outcome
from ledgerflow.engine.node import StoredResult
from ledgerflow.engine.valuing import LazyValue
from ledgerflow.errors import IntegrityError
from ledgerflow.hashing import hash_value
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.values import digest as bytes_digest
from ledgerflow.values import encode, open_store

MIB = 1024 * 1024
SIZE = 3 * MIB

pytestmark = [
    pytest.mark.dask,
    pytest.mark.parametrize("database_dialect", ["sqlite"]),  # the path is the database's
]


def payload(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


@task
def blob(size: int) -> bytes:
    return payload(size)


@task
def measure(data: bytes) -> int:
    return len(data) * 1000 + data[-1]


@task
def pair(size: int) -> tuple[bytes, bytes]:
    return payload(size), payload(size // 2)


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    from distributed import LocalCluster

    from ledgerflow.executors.dask import LOCAL_SCHEDULER_HTTP

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                           scheduler_kwargs=dict(LOCAL_SCHEDULER_HTTP), silence_logs=logging.ERROR)  # fmt: skip
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def dask_executor(address: str, monkeypatch: pytest.MonkeyPatch, seen: list[Any]) -> Any:
    """A dask executor on the module's cluster, with 1 MiB as the by-reference size; what
    comes back from the workers is appended to ``seen`` (the value, its pickled size)."""
    from ledgerflow.executors.dask import DaskExecutor

    executor = DaskExecutor(address=address, by_reference_bytes=MIB)
    original = executor._outcome

    def outcome(*args: Any) -> Outcome:
        found = original(*args)
        seen.append((found.value, len(pickle.dumps(found))))
        return found

    monkeypatch.setattr(executor, "_outcome", outcome)
    submit = executor.submit

    def submitted(job: Any) -> None:
        seen.append(("sent", job.task.name, tuple(type(a) for a in job.args)))
        submit(job)

    monkeypatch.setattr(executor, "submit", submitted)
    return executor


def test_a_large_result_is_stored_by_its_worker_and_recorded_like_any_other(
    scheduler_address: str,
    ledger_settings: Settings,
    ledger: LedgerRows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    executor = dask_executor(scheduler_address, monkeypatch, seen)
    result = ledgerflow.execute(
        measure(blob(SIZE)), settings=ledger_settings, executor=executor
    )
    assert result.status == "done", result.failures
    expected = payload(SIZE)
    assert result.value == SIZE * 1000 + expected[-1]  # the next task got the bytes
    # What came back through Dask for blob was a reference, not 3 MiB.
    ((stored, travelled),) = [(v[0], v[1]) for v in seen if type(v[0]) is StoredResult]
    assert travelled < 64 * 1024
    # ... and the next task's job carried that reference, read by its worker.
    assert ("sent", "measure", (StoredResult,)) in seen
    digest = hash_value(expected)
    assert stored.digest == digest and stored.size >= SIZE
    # The ledger holds what the run's process would have written itself.
    (row,) = [r for r in ledger.rows("lf_value") if r["hash"] == digest]
    assert row["inline"] is None and row["store_key"] == digest and row["size"] == stored.size
    data = encode(expected).data
    assert open_store(ledger_settings).get(row["store_key"]) == data
    assert row["signature"] == bytes_digest(data) and row["writer"] == ledger_settings.writer
    runs = {r["task_name"]: r for r in ledger.rows("lf_task_run")}
    assert runs[blob.fullname]["value_hash"] == digest
    # Same hashes as the local executor: the next run on it finds both calls cached.
    again = ledgerflow.execute(measure(blob(SIZE)), settings=ledger_settings, executor="local")
    assert again.value == result.value and again.counts["cached"] == 2


def test_the_run_value_is_read_from_the_store_on_first_use_and_checked(
    scheduler_address: str,
    ledger_settings: Settings,
    ledger: LedgerRows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    executor = dask_executor(scheduler_address, monkeypatch, seen)
    result = ledgerflow.execute(pair(2 * MIB), settings=ledger_settings, executor=executor)
    assert result.status == "done"
    assert isinstance(result.__dict__["_value"], LazyValue)  # not read by the run
    assert result.value == (payload(2 * MIB), payload(MIB))
    (stored,) = [v[0] for v in seen if v[0] != "sent"]
    assert type(stored) is StoredResult and len(stored.rows) == 3  # the tuple, its elements
    digests = {r["hash"] for r in ledger.rows("lf_value")}
    assert {hash_value(payload(2 * MIB)), hash_value(payload(MIB)), stored.digest} <= digests
    edges = [e for e in ledger.rows("lf_value_edge") if e["parent_hash"] == stored.digest]
    assert len(edges) == 2

    # Bytes changed in the store after the run are refused when the value is read.
    executor = dask_executor(scheduler_address, monkeypatch, [])
    other = ledgerflow.execute(blob(SIZE + 256), settings=ledger_settings, executor=executor)
    assert other.status == "done"
    store = open_store(ledger_settings)
    key = hash_value(payload(SIZE + 256))
    store.delete(key)
    store.put(key, encode(b"x" * (SIZE + 256)).data)
    shown = other.value_preview(40)  # what `ledgerflow run` prints: the recorded preview
    assert shown is not None and shown.startswith("b'\\x00\\x01") and len(shown) <= 40
    with pytest.raises(IntegrityError, match="do not hash to its content address"):
        _ = other.value


def test_results_under_the_size_travel_whole(
    scheduler_address: str,
    ledger_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    executor = dask_executor(scheduler_address, monkeypatch, seen)
    result = ledgerflow.execute(blob(MIB // 2), settings=ledger_settings, executor=executor)
    assert result.value == payload(MIB // 2)
    assert [type(v[0]) for v in seen if v[0] != "sent"] == [bytes]


def test_a_worker_that_cannot_write_the_store_fails_the_task_and_says_what_to_do(
    scheduler_address: str,
    ledger_settings: Settings,
    ledger: LedgerRows,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings = replace(
        ledger_settings, values=replace(ledger_settings.values, store=blocker / "values")
    )
    executor = dask_executor(scheduler_address, monkeypatch, [])
    result = ledgerflow.execute(blob(SIZE), settings=settings, executor=executor)
    assert result.status == "failed"
    (failure,) = result.failures
    assert "could not write to the value store" in failure.message, failure.message
    assert "by_reference_bytes" in failure.message
    (row,) = ledger.rows("lf_task_run")
    assert row["status"] == "failed" and row["value_hash"] is None


def test_a_repaired_value_computed_again_by_a_worker_is_stored_once_as_itself(
    scheduler_address: str,
    ledger_settings: Settings,
    ledger: LedgerRows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After ``cache verify --repair`` dropped a large value's damaged bytes, the worker
    that computes it again stores them; the run records the worker's row and keeps its bytes."""
    from ledgerflow import api

    executor = dask_executor(scheduler_address, monkeypatch, [])
    ledgerflow.execute(blob(SIZE), settings=ledger_settings, executor=executor)
    digest = hash_value(payload(SIZE))
    store = open_store(ledger_settings)
    store.delete(digest)
    store.put(digest, encode(payload(SIZE // 2)).data)  # other bytes under its key
    assert api.cache_repair(ledger_settings, dry_run=False).values == (digest,)
    again = ledgerflow.execute(blob(SIZE), settings=ledger_settings, executor=executor)
    assert again.counts["done"] == 1 and again.value == payload(SIZE)
    assert store.get(digest) == encode(payload(SIZE)).data
    last = ledgerflow.execute(blob(SIZE), settings=ledger_settings, executor="local")
    assert last.counts["cached"] == 1 and not last.notes and last.value == payload(SIZE)
    assert api.cache_verify(ledger_settings).ok
