"""``cache verify --repair`` on each value store: the damaged object goes from a shared
folder (``file://``), an object store (``s3://``, a real local S3 server) or the ledger's
``lf_value_chunk`` rows, the others stay, and the next run stores it again (SQLite and
PostgreSQL, whose runs use the user role)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerflow import api, task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import LEDGER_STORE, Settings
from ledgerflow.db import Database
from ledgerflow.engine import execute
from ledgerflow.hashing import hash_value
from ledgerflow.values import encode, open_store

CALLS: Counter[int] = Counter()


@task
def text(n: int) -> str:
    CALLS[n] += 1
    return "v" * n


def project(root: Path, entry: dict[str, Any], values: dict[str, Any]) -> Settings:
    root.mkdir(parents=True, exist_ok=True)
    config = {"databases": {"default": entry}, "values": {"inline_max_bytes": 100, **values}}
    path = root / "ledgerflow.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_settings(path)


def store_values(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "ledger":
        return {"store": LEDGER_STORE}
    if kind == "file":
        return {"store": (tmp_path / "shared values").as_uri()}
    bucket, options = request.getfixturevalue("s3_bucket")
    return {"store": f"s3://{bucket}/team/values", "store_options": options}


@pytest.mark.parametrize("kind", ["ledger", "file", "s3"])
def test_repair_removes_the_damaged_object_from_each_store(
    kind: str,
    tmp_path: Path,
    migrated_database_entry: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    settings = project(tmp_path / "p", migrated_database_entry, store_values(kind, tmp_path, request))
    sizes = [300, 400, 500]
    assert execute([text(n) for n in sizes], settings=settings).ok
    damaged, kept = hash_value("v" * 400), hash_value("v" * 300)
    admin = Database(settings, role="admin")  # the user role may not delete chunks
    try:
        store = open_store(settings, engine=admin.engine())
        assert store.exists(damaged) and store.exists(kept)
        store.delete(damaged)
        store.put(damaged, encode("w" * 400).data)  # other bytes under its key

        assert api.cache_repair(settings).values == (damaged,)  # a dry run
        assert store.exists(damaged)
        report = api.cache_repair(settings, dry_run=False)
        assert report.values == (damaged,) and report.blobs == 1
        assert not store.exists(damaged) and store.exists(kept)

        CALLS.clear()
        again = execute([text(n) for n in sizes], settings=settings)
        assert again.value == ["v" * n for n in sizes]
        assert Counter({400: 1}) == CALLS
        assert store.get(damaged) == encode("v" * 400).data
        CALLS.clear()
        last = execute([text(n) for n in sizes], settings=settings)
        assert not CALLS and not last.notes and last.counts.get("cached") == 3
        assert api.cache_verify(settings).ok
    finally:
        admin.dispose()
