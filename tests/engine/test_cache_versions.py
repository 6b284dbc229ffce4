"""A call's cache entry is a series of versions: every result recorded for it adds a row,
and a lookup uses the newest one that passes its checks. So a ``--rerun`` decides what later
runs get, and a call computed again after its entry was damaged is a hit for the runs after
it, with no admin, while the user role still only adds rows (PostgreSQL enforces it)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

import ledgerflow
from ledgerflow import task
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.engine.cache import CacheReader
from ledgerflow.hashing import hash_value
from ledgerflow.ledger import tables
from ledgerflow.testing.pipelines import LedgerRows

#: What ``reading`` returns: "new external data" the test changes between runs.
SOURCE: dict[int, int] = {}
CALLS: list[int] = []


@task
def reading(n: int) -> int:
    CALLS.append(n)
    return SOURCE.get(n, n)


def _feed(offset: int, count: int = 1) -> None:
    SOURCE.clear()
    SOURCE.update({i: i + offset for i in range(count)})
    CALLS.clear()


def _tamper(settings: Settings, statement: Any) -> int:
    """Change the ledger behind ledgerflow's back, as the admin (who owns the tables)."""
    database = Database(settings, role="admin")
    try:
        with database.engine().begin() as conn:
            return int(conn.execute(statement).rowcount)
    finally:
        database.dispose()


def test_a_rerun_result_is_what_later_runs_get(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    _feed(100)
    assert ledgerflow.run(reading(0), settings=ledger_settings) == 100
    _feed(200)  # the data changed: a plain run still returns the cached result
    assert ledgerflow.run(reading(0), settings=ledger_settings) == 100 and CALLS == []
    assert ledgerflow.run(reading(0), settings=ledger_settings, rerun=["reading"]) == 200
    assert CALLS == [0]
    CALLS.clear()
    later = ledgerflow.execute(reading(0), settings=ledger_settings)
    assert later.value == 200 and later.counts["cached"] == 1 and CALLS == []
    assert ledgerflow.explain(reading(0), settings=ledger_settings).status == "cached"
    # both results stay in the ledger: the first is history, the newest is used
    versions = ledger.rows("lf_cache_entry", order_by="created_at")
    assert [v["value_hash"] for v in versions] == [hash_value(100), hash_value(200)]


def test_a_damaged_newest_version_falls_back_to_the_older_valid_one(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    SOURCE.clear()
    SOURCE[1] = 555
    ledgerflow.run(reading(1), settings=ledger_settings)  # a value to point an entry at
    _feed(100)
    ledgerflow.run(reading(0), settings=ledger_settings)
    _feed(200)
    ledgerflow.run(reading(0), settings=ledger_settings, rerun=["reading"])
    (newest,) = ledger.rows("lf_cache_entry", value_hash=hash_value(200))
    entry = tables.cache_entry
    changed = _tamper(
        ledger_settings,
        update(entry)
        .where(entry.c.args_hash == newest["args_hash"], entry.c.created_at == newest["created_at"])
        .values(value_hash=hash_value(555)),
    )
    assert changed == 1
    _feed(300)
    result = ledgerflow.execute(reading(0), settings=ledger_settings)
    assert result.value == 100 and result.counts["cached"] == 1 and CALLS == []


def test_a_damaged_entry_is_computed_once_then_later_runs_hit(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    _feed(100, count=3)
    calls = [reading(i) for i in range(3)]
    assert ledgerflow.run(calls, settings=ledger_settings) == [100, 101, 102]
    (first,) = ledger.rows("lf_cache_entry", value_hash=hash_value(100))
    entry = tables.cache_entry
    _tamper(
        ledger_settings,
        update(entry).where(entry.c.args_hash == first["args_hash"]).values(value_hash=hash_value(101)),
    )
    _feed(100, count=3)
    again = ledgerflow.execute(calls, settings=ledger_settings)
    assert again.value == [100, 101, 102] and CALLS == [0] and len(again.notes) == 1
    assert "does not match the call it claims" in again.notes[0]
    CALLS.clear()
    later = ledgerflow.execute(calls, settings=ledger_settings)
    assert later.value == [100, 101, 102] and later.counts["cached"] == 3
    assert CALLS == [] and later.notes == []


def test_the_lookup_reads_every_version_of_a_batch_in_one_query(
    ledger_settings: Settings,
) -> None:
    keys_of: list[tuple[str, str]] = []
    calls = [reading(i) for i in range(40)]
    for offset in (100, 200, 300):  # three versions of each of the 40 entries
        _feed(offset, count=40)
        ledgerflow.run(calls, settings=ledger_settings, rerun=["reading"])
    database = Database(ledger_settings)
    try:
        with database.engine().connect() as conn:
            rows = conn.execute(
                text("SELECT DISTINCT task_hash, args_hash FROM lf_cache_entry")
            ).all()
            keys_of = [(r[0], r[1]) for r in rows]
        reader = CacheReader(database.engine())
        try:
            hits = reader.lookup(keys_of, fresh=True)  # the batch of calls that became ready
        finally:
            reader.close()
        # the same keys through the task's prefetch (a task looked up many times in a run)
        prefetching = CacheReader(database.engine(), defer_values=True)
        try:
            prefetched = prefetching.lookup(keys_of)
        finally:
            prefetching.close()
    finally:
        database.dispose()
    newest = {hash_value(300 + i) for i in range(40)}
    assert reader.queries == 1 and len(hits) == 40
    assert {h.value_hash for h in hits.values()} == newest
    assert all(h.problem is None for h in hits.values())
    assert prefetching.queries == 1 and {h.value_hash for h in prefetched.values()} == newest
    CALLS.clear()
    result = ledgerflow.execute(calls, settings=ledger_settings)
    assert result.value == [300 + i for i in range(40)] and CALLS == []


def test_the_lookup_uses_the_primary_key_index(ledger_settings: Settings) -> None:
    reader_sql = CacheReader.__dict__["_sql"]
    database = Database(ledger_settings)
    try:
        engine = database.engine()
        reader = CacheReader(engine)
        sql = reader_sql(reader, 2)
        reader.close()
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("t", "a", "b")).all()
                detail = " ".join(str(row[-1]) for row in plan)
                assert "SEARCH c USING INDEX sqlite_autoindex_lf_cache_entry" in detail, detail
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = conn.exec_driver_sql(f"EXPLAIN {sql}", ("t", "a", "b")).all()
                detail = " ".join(str(row[0]) for row in plan)
                assert "pk_lf_cache_entry on lf_cache_entry c" in detail, detail
    finally:
        database.dispose()


@pytest.mark.parametrize("database_dialect", ["postgresql"])
def test_the_user_role_still_cannot_rewrite_or_delete_an_entry(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    _feed(100)
    ledgerflow.run(reading(0), settings=ledger_settings)
    database = Database(ledger_settings)  # the user role, as pipelines connect
    try:
        engine = database.engine()
        for statement in (
            "UPDATE lf_cache_entry SET created_at = now() + interval '1 day'",
            "DELETE FROM lf_cache_entry",
        ):
            with engine.connect() as conn:
                assert conn.execute(text("SELECT current_user")).scalar() == (
                    ledger_settings.default.user.username if ledger_settings.default.user else None
                )
                with pytest.raises(DBAPIError, match="permission denied"):
                    conn.execute(text(statement))
    finally:
        database.dispose()
    assert [r["value_hash"] for r in ledger.rows("lf_cache_entry")] == [hash_value(100)]


def _two_versions(settings: Settings) -> None:
    _feed(100)
    ledgerflow.run(reading(0), settings=settings)
    _feed(200)
    ledgerflow.run(reading(0), settings=settings, rerun=["reading"])


def test_cache_list_shows_each_call_once_with_its_newest_result(
    ledger_settings: Settings,
) -> None:
    from ledgerflow import api

    _two_versions(ledger_settings)
    report = api.cache_list(ledger_settings, "reading")
    (stats,) = report.tasks
    assert stats.entries == 1
    assert [e.value_hash for e in report.entries] == [hash_value(200)]


def test_repair_removes_only_the_damaged_version(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    from ledgerflow import api

    _two_versions(ledger_settings)
    (older,) = ledger.rows("lf_cache_entry", value_hash=hash_value(100))
    entry = tables.cache_entry
    _tamper(
        ledger_settings,
        update(entry)
        .where(entry.c.args_hash == older["args_hash"], entry.c.created_at == older["created_at"])
        .values(value_hash=hash_value(200)),  # no longer agrees with its call
    )
    report = api.cache_repair(ledger_settings, dry_run=False)
    assert len(report.entries) == 1
    assert [r["value_hash"] for r in ledger.rows("lf_cache_entry")] == [hash_value(200)]
    assert api.cache_verify(ledger_settings).ok
    CALLS.clear()
    assert ledgerflow.run(reading(0), settings=ledger_settings) == 200 and CALLS == []


def test_export_and_import_carry_each_version_once(
    ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path
) -> None:
    from ledgerflow.provenance.exchange import export, import_

    _two_versions(ledger_settings)
    path = tmp_path / "all.jsonl"
    export(ledger_settings, out=path)
    keys = [
        json.loads(line)["key"]
        for line in path.read_text().splitlines()
        if json.loads(line)["kind"] == "cache_entry"
    ]
    assert len(keys) == 2 and len({k[2] for k in keys}) == 2  # keyed by their times too
    again = import_(ledger_settings, path)
    assert again.added.get("cache_entry", 0) == 0 and again.skipped["cache_entry"] == 2
    assert ledger.count("lf_cache_entry") == 2


def test_downgrading_keeps_each_call_s_newest_entry(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    from ledgerflow import migrations
    from ledgerflow.migrations.scripts import FRAMEWORK_BRANCH

    _two_versions(ledger_settings)
    steps = migrations.downgrade(ledger_settings, f"{FRAMEWORK_BRANCH}@-2")
    assert [s.revision for s in steps] == ["f3a6c2d8b951", "e5d1b7c93a62"]
    assert [r["value_hash"] for r in ledger.rows("lf_cache_entry")] == [hash_value(200)]
    migrations.upgrade(ledger_settings)
    CALLS.clear()
    assert ledgerflow.run(reading(0), settings=ledger_settings) == 200 and CALLS == []


class _SkewedTime:
    """The ``time`` module as a host whose clock runs an hour behind sees it."""

    def __init__(self, behind: float) -> None:
        self.behind = behind

    def time(self) -> float:
        return time.time() - self.behind

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.mark.parametrize("database_dialect", ["postgresql"])
def test_a_rerun_from_a_host_whose_clock_is_behind_is_what_later_runs_get(
    ledger_settings: Settings, ledger: LedgerRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledgerflow.engine import scheduler

    _feed(100)
    assert ledgerflow.run(reading(0), settings=ledger_settings) == 100
    monkeypatch.setattr(scheduler, "time", _SkewedTime(3600.0))
    _feed(200)
    assert ledgerflow.run(reading(0), settings=ledger_settings, rerun=["reading"]) == 200
    monkeypatch.undo()
    CALLS.clear()
    assert ledgerflow.run(reading(0), settings=ledger_settings) == 200 and CALLS == []
    versions = ledger.rows("lf_cache_entry", order_by="created_at")
    assert [v["value_hash"] for v in versions] == [hash_value(100), hash_value(200)]


@pytest.mark.parametrize("database_dialect", ["postgresql"])
def test_versions_of_one_key_in_one_transaction_never_collide(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    _feed(100)
    ledgerflow.run(reading(0), settings=ledger_settings)
    (first,) = ledger.rows("lf_cache_entry")
    columns = "task_hash, args_hash, call_hash, value_hash, run_id"
    add = (
        f"INSERT INTO lf_cache_entry ({columns}, created_at) SELECT {columns}, {{at}} "
        "FROM lf_cache_entry{join} WHERE created_at = :at"
    )
    database = Database(ledger_settings)  # the user role, as pipelines connect
    try:
        with database.engine().begin() as conn:
            # a version that keeps its own time, a day ahead (as an import does) ...
            conn.execute(text("SELECT set_config('ledgerflow.keep_time', 'on', true)"))
            ahead = add.format(at="created_at + interval '1 day'", join="")
            conn.execute(text(ahead), {"at": first["created_at"]})
            conn.execute(text("SELECT set_config('ledgerflow.keep_time', 'off', true)"))
            # ... then four of the same key, with one client time: three in one statement
            at = {"at": first["created_at"]}
            three = " CROSS JOIN generate_series(1, 3)"
            conn.execute(text(add.format(at=":at", join=three)), at)
            conn.execute(text(add.format(at=":at", join="")), at)
    finally:
        database.dispose()
    times = [v["created_at"] for v in ledger.rows("lf_cache_entry", order_by="created_at")]
    assert len(times) == 6 and len(set(times)) == 6
    imported = first["created_at"] + timedelta(days=1)
    assert times[:2] == [first["created_at"], imported]  # the new ones all come after both
