"""Large values in a store every checkout reaches: the ledger itself (PostgreSQL default),
a shared folder (``file://``) or an object store (``s3://``, on a real local S3 server);
and what a run does when that store cannot be reached or written."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ledgerflow import task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import LEDGER_STORE, Settings
from ledgerflow.engine import execute
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.values import open_store
from ledgerflow.values.store import CHUNK_SIZE

#: Over the inline limit the tests set, and over one chunk: stored in several parts.
BIG = CHUNK_SIZE + 12_345
INLINE_MAX = 1000
CALLS: list[str] = []


@task
def big_bytes(seed: int) -> bytes:
    CALLS.append(f"bytes {seed}")
    return np.random.default_rng(seed).bytes(BIG)


@task
def big_array(seed: int) -> Any:
    CALLS.append(f"array {seed}")
    return np.random.default_rng(seed).random(BIG // 8)


@task
def small(i: int) -> int:
    CALLS.append(f"small {i}")
    return i * 2


@task
def pipeline(seed: int) -> Any:
    return [small(1), big_bytes(seed), big_array(seed), small(2)]


def _expected(seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [2, rng.bytes(BIG), np.random.default_rng(seed).random(BIG // 8), 4]


def _same(got: list[Any], seed: int) -> bool:
    want = _expected(seed)
    return (got[0], got[1], got[3]) == (want[0], want[1], want[3]) and np.array_equal(
        got[2], want[2]
    )


def checkout(root: Path, entry: dict[str, Any], values: dict[str, Any] | None = None) -> Settings:
    """A project directory ``root`` on the ledger ``entry``, with ``values:`` settings."""
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"databases": {"default": entry}}
    config["values"] = {"inline_max_bytes": INLINE_MAX, **(values or {})}
    path = root / "ledgerflow.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_settings(path)


def _run(settings: Settings, seed: int) -> Any:
    CALLS.clear()
    result = execute(pipeline(seed), settings=settings, executor="local")
    return result


def _stored_keys(settings: Settings) -> list[str]:
    rows = LedgerRows(settings)
    try:
        return sorted(r["store_key"] for r in rows.rows("lf_value") if r["store_key"])
    finally:
        rows.close()


# -- every store, through a real run -------------------------------------------------------


def _store_values(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "ledger":
        return {"store": LEDGER_STORE}
    if kind == "file":
        return {"store": (tmp_path / "shared values").as_uri()}
    bucket, options = request.getfixturevalue("s3_bucket")
    return {"store": f"s3://{bucket}/team/values", "store_options": options}


@pytest.mark.parametrize("kind", ["ledger", "file", "s3"])
def test_large_values_round_trip_through_a_run_on_each_store(
    kind: str, migrated_database_entry: dict[str, Any], tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    settings = checkout(
        tmp_path / "a", migrated_database_entry, _store_values(kind, tmp_path, request)
    )
    first = _run(settings, 7)
    assert first.status == "done", first.failures
    assert _same(first.value, 7) and len(CALLS) == 4
    keys = _stored_keys(settings)
    assert len(keys) == 3  # the bytes, the array and the list holding them; not the ints
    store = open_store(settings)
    assert all(store.exists(key) for key in keys)
    assert not (tmp_path / "a" / ".ledgerflow" / "values").exists()
    if kind == "ledger":
        rows = LedgerRows(settings)
        assert rows.count("lf_value_chunk") >= 4  # two values of two chunks at least
        rows.close()
    again = _run(settings, 7)
    assert again.status == "done" and again.counts["cached"] >= 1
    assert CALLS == [] and _same(again.value, 7)
    store.close()


@pytest.mark.parametrize("database_dialect", ["postgresql"])
def test_a_postgresql_ledger_keeps_large_values_in_itself_by_default(
    migrated_database_entry: dict[str, Any], tmp_path: Path
) -> None:
    settings = checkout(tmp_path / "a", migrated_database_entry)
    assert settings.values.store == LEDGER_STORE
    assert _run(settings, 3).status == "done"
    rows = LedgerRows(settings)
    chunks = rows.rows("lf_value_chunk")
    rows.close()
    assert {c["key"] for c in chunks} == set(_stored_keys(settings))
    assert sum(len(c["data"]) for c in chunks) > 2 * BIG - 100  # the bytes and the array
    assert max(len(c["data"]) for c in chunks) <= CHUNK_SIZE
    assert not (tmp_path / "a" / ".ledgerflow" / "values").exists()


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_a_sqlite_ledger_keeps_its_local_folder_by_default(
    migrated_database_entry: dict[str, Any], tmp_path: Path
) -> None:
    settings = checkout(tmp_path / "a", migrated_database_entry)
    assert settings.values.store == tmp_path / "a" / ".ledgerflow" / "values"
    assert _run(settings, 3).status == "done"
    folder = tmp_path / "a" / ".ledgerflow" / "values"
    assert all((folder / k[:2] / k[2:]).is_file() for k in _stored_keys(settings))


@pytest.mark.parametrize("database_dialect", ["postgresql"])
@pytest.mark.parametrize("values", [None, "folder"], ids=["default", "local-folders"])
def test_two_checkouts_on_one_postgresql_ledger_read_each_others_large_values(
    values: str | None, migrated_database_entry: dict[str, Any], tmp_path: Path
) -> None:
    """B's run after A's finds every call cached and loads A's large values from the
    ledger; with a local folder per checkout (what ledgerflow did before) it cannot."""
    local = {"store": ".ledgerflow/values"} if values == "folder" else None
    a = checkout(tmp_path / "a", migrated_database_entry, local)
    b = checkout(tmp_path / "b", migrated_database_entry, local)
    assert _run(a, 11).status == "done" and len(CALLS) == 4
    from_b = _run(b, 11)
    assert from_b.status == "done" and _same(from_b.value, 11)
    if values == "folder":
        assert sorted(CALLS) == ["array 11", "bytes 11"]  # unreachable: computed again
        return
    assert CALLS == []
    assert from_b.counts["cached"] >= 1 and from_b.counts.get("done", 0) == 0


# -- faults --------------------------------------------------------------------------------


def _failure_lines(result: Any) -> list[str]:
    return [f"{f.exception_type}: {f.message}" for f in result.failures]


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_a_shared_folder_that_cannot_be_written_fails_those_calls_and_keeps_the_rest(
    migrated_database_entry: dict[str, Any], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the shared folder should be")
    broken = checkout(tmp_path / "a", migrated_database_entry,
                      {"store": (blocker / "values").as_uri()})  # fmt: skip
    result = _run(broken, 5)
    assert result.status == "failed"
    lines = _failure_lines(result)
    assert len(lines) == 2
    for line in lines:
        assert "\n" not in line
        assert f"cannot write to the value store {blocker / 'values'}" in line
        assert "Not a directory" in line
    assert sorted(CALLS) == ["array 5", "bytes 5", "small 1", "small 2"]
    fixed = checkout(tmp_path / "a", migrated_database_entry,
                     {"store": (tmp_path / "values").as_uri()})  # fmt: skip
    after = _run(fixed, 5)
    assert after.status == "done" and _same(after.value, 5)
    assert sorted(CALLS) == ["array 5", "bytes 5"]  # the small calls' work was kept


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_an_unreachable_object_store_fails_those_calls_in_one_line_and_keeps_the_rest(
    migrated_database_entry: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "do-not-show-this-secret"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    options = {"endpoint_url": endpoint,
               "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}  # fmt: skip
    settings = checkout(tmp_path / "a", migrated_database_entry,
                        {"store": "s3://team-bucket/values", "store_options": options})  # fmt: skip
    result = _run(settings, 6)
    assert result.status == "failed"
    lines = _failure_lines(result)
    assert len(lines) == 2
    for line in lines:
        assert "\n" not in line and secret not in line
        assert "to the value store s3://team-bucket/values" in line
        assert "reachable and writable" in line
    assert sorted(CALLS) == ["array 6", "bytes 6", "small 1", "small 2"]
    assert _stored_keys(settings) == []  # nothing points at a value that is not there


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_a_missing_bucket_is_named_in_the_failure(
    migrated_database_entry: dict[str, Any], tmp_path: Path, s3_bucket: tuple[str, dict[str, Any]]
) -> None:
    _, options = s3_bucket
    settings = checkout(tmp_path / "a", migrated_database_entry,
                        {"store": "s3://no-such-bucket/values", "store_options": options})  # fmt: skip
    result = _run(settings, 8)
    lines = _failure_lines(result)
    assert len(lines) == 2 and all("s3://no-such-bucket/values" in line for line in lines)
    assert all("NoSuchBucket" in line or "does not exist" in line for line in lines), lines


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_a_store_gone_after_the_run_means_computing_again_not_failing(
    migrated_database_entry: dict[str, Any], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    settings = checkout(tmp_path / "a", migrated_database_entry, {"store": shared.as_uri()})
    assert _run(settings, 9).status == "done"
    shared.rename(tmp_path / "unmounted")
    again = _run(settings, 9)
    assert again.status == "done" and _same(again.value, 9)
    assert sorted(CALLS) == ["array 9", "bytes 9"]


def test_store_options_secrets_are_masked_in_the_effective_configuration(tmp_path: Path) -> None:
    path = tmp_path / "ledgerflow.yml"
    path.write_text(
        "databases:\n  default: {dialect: sqlite, path: l.db}\n"
        "values:\n  store: s3://b/p\n  store_options: {endpoint_url: 'http://h:1', "
        "secret: hunter2, key: me}\n"
    )
    settings = load_settings(path, environ={})
    assert settings.values.store == "s3://b/p"
    assert "hunter2" not in settings.redacted_yaml()
    assert "hunter2" not in repr(settings)
    assert settings.values.store_options["secret"] == "hunter2"  # usable, only never shown
