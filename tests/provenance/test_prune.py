"""Pruning old runs and the records only they needed; cache list/clear. Both dialects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.errors import NotFoundError, UsageError
from ledgerflow.ledger.schema import LEDGER_TABLES, Run, Value
from ledgerflow.provenance.cache import cache_clear, cache_entries, cache_list
from ledgerflow.provenance.exchange import value_store
from ledgerflow.provenance.prune import prune
from ledgerflow.testing.projects import make_project
from ledgerflow.testing.workload import LedgerWriter

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=60)
RECENT = NOW - timedelta(days=1)
MONTH = timedelta(days=30)
BLOB = b"x" * 5000


@dataclass
class Scene:
    settings: Settings
    ids: dict[str, str]


@pytest.fixture
def scene(tmp_path: Path, migrated_database_entry: dict[str, Any]) -> Scene:
    """Old runs (one done, one failed, one still running), a recent run, cache entries.

    old (done):   tr1 sq(v1) -> w1 (cache entry) ; tr2 old_only(v2) -> K = [w2 file] (cache
                  entry), whose task returned c7 = sq(v2) -> K ; a log, tags
    old (failed): tr5 sq(v5) failed ; a log
    old (running): trR sq(v8) running
    recent:       tr3 sq(v1) cached (needs c1) ; tr4 sq(v3) -> L = [w3a, w3b]
    no run:       cache entry old_only(v6) -> w6 (c6)
    """
    settings = make_project(tmp_path, migrated_database_entry)
    w = LedgerWriter(now=OLD, seed=5)
    sq, old_only = w.task("sq"), w.task("old_only")
    v = {name: w.value(name) for name in ("v1", "v2", "v3", "v5", "v6", "v8", "w1", "w6")}
    w2 = w.file("out/w2.txt", "w2")
    big = w.rows[Value][1]
    assert big["hash"] == v["v2"]
    big.update(inline=None, store_key=v["v2"], size=len(BLOB))
    k = w.container([w2])
    lst = w.container([w.value("w3a"), w.value("w3b")])
    c1 = w.call(sq, [v["v1"]], v["w1"])
    c2 = w.call(old_only, [v["v2"]], k)
    c7 = w.call(sq, [v["v2"]], k, parent=c2)
    c3 = w.call(sq, [v["v3"]], lst)
    c6 = w.call(old_only, [v["v6"]], v["w6"])
    old = w.run("main", started_at=OLD)
    tr1 = w.task_run(old, sq, c1, task_name="sq", started_at=OLD)
    tr2 = w.task_run(old, old_only, c2, task_name="old_only", started_at=OLD)
    w.task_run(old, sq, c7, task_name="sq", parent_id=tr2, started_at=OLD)
    w.log(old, tr1, "squared", at=OLD)
    w.tag(old, "run", "env", "prod")
    w.tag(tr2, "task_run", "triage", "open")
    w.tag(w2, "file", "keep", "maybe")
    failed = w.run("main", status="failed", started_at=OLD)
    tr5 = w.task_run(failed, sq, None, status="failed", task_name="sq",
                     args_hash=w.arguments([v["v5"]]), started_at=OLD, error=("ValueError", "no"))
    w.log(failed, tr5, "failing", level="ERROR", at=OLD)
    running = w.run("main", status="running", started_at=OLD)
    w.rows[Run][-1]["heartbeat_at"] = datetime.now(UTC)  # still alive when the test runs
    w.task_run(running, sq, None, status="running", task_name="sq",
               args_hash=w.arguments([v["v8"]]), started_at=OLD)
    recent = w.run("main", started_at=RECENT)
    w.task_run(recent, sq, c1, status="cached", task_name="sq", started_at=RECENT, cached_from=old)
    w.task_run(recent, sq, c3, task_name="sq", started_at=RECENT)
    for row in w.rows[Value]:
        row.setdefault("store_key", None)
    w.write(settings)
    value_store(settings).put(v["v2"], BLOB)
    sql(settings,
        "INSERT INTO lf_configuration (hash, yaml, created_at) VALUES "
        "('cfg-old', 'a: 1', '2026-01-01 00:00:00'), ('cfg-new', 'a: 2', '2026-01-01 00:00:00')",
        f"UPDATE lf_run SET config_hash = 'cfg-old' WHERE id IN ('{old}', '{failed}')",
        f"UPDATE lf_run SET config_hash = 'cfg-new' WHERE id IN ('{running}', '{recent}')",
        "INSERT INTO lf_cache_entry (task_hash, args_hash, call_hash, value_hash, run_id, created_at) "
        f"SELECT task_hash, args_hash, hash, value_hash, '{old}', created_at FROM lf_call "
        f"WHERE hash IN ('{c1}', '{c2}')",
        "INSERT INTO lf_cache_entry (task_hash, args_hash, call_hash, value_hash, run_id, created_at) "
        f"SELECT task_hash, args_hash, hash, value_hash, NULL, created_at FROM lf_call WHERE hash = '{c6}'")
    ids = {"old": old, "failed": failed, "running": running, "recent": recent, "c1": c1,
           "c2": c2, "c7": c7, "c6": c6, "blob": v["v2"], "w2": w2, "v5": v["v5"]}
    return Scene(settings, ids)


def sql(settings: Settings, *statements: str) -> list[Any]:
    database = Database(settings)
    try:
        with database.engine().begin() as conn:
            result = None
            for statement in statements:
                result = conn.execute(text(statement))
            return list(result) if result is not None and result.returns_rows else []
    finally:
        database.dispose()


def counts(settings: Settings) -> dict[str, int]:
    rows = sql(settings, " UNION ALL ".join(
        f"SELECT '{t}', count(*) FROM {t}" for t in LEDGER_TABLES
        if t != "lf_value_chunk"))  # the value store of a PostgreSQL ledger: "blob" below
    return dict(rows)


def exists(settings: Settings, table: str, column: str, key: str) -> bool:
    return bool(sql(settings, f"SELECT 1 FROM {table} WHERE {column} = '{key}'"))


def removed(report: Any) -> dict[str, int]:
    return {kind: n for kind, n in report.removed.items() if n}


def test_prune_removes_old_runs_and_what_only_they_needed(scene: Scene) -> None:
    before = counts(scene.settings)
    report = prune(scene.settings, MONTH)
    assert sorted(report.run_ids) == sorted([scene.ids["old"], scene.ids["failed"]])
    assert removed(report) == {
        "run": 2, "task_run": 4, "log_record": 2, "tag": 3, "cache_entry": 2, "call": 2,
        "call_edge": 1, "argument": 2, "value": 4, "value_edge": 1, "file": 1,
        "configuration": 1, "blob": 1,
    }
    after = counts(scene.settings)
    by_table = {"lf_" + kind: n for kind, n in report.removed.items() if kind != "blob"}
    assert after == {t: before[t] - by_table.get(t, 0) for t in before}
    s, ids = scene.settings, scene.ids
    assert exists(s, "lf_run", "id", ids["running"])  # never a running run
    assert exists(s, "lf_call", "hash", ids["c1"])  # the recent run's cache hit needs it
    assert exists(s, "lf_call", "hash", ids["c6"])  # a cache entry of no run is a root
    assert not exists(s, "lf_call", "hash", ids["c7"])
    assert not value_store(s).exists(ids["blob"])
    assert prune(s, MONTH).total == 0  # nothing left to remove


def test_keep_cache_keeps_entries_and_what_they_need(scene: Scene) -> None:
    report = prune(scene.settings, MONTH, keep_cache=True)
    assert removed(report) == {
        "run": 2, "task_run": 4, "log_record": 2, "tag": 2, "argument": 1, "value": 1,
        "configuration": 1,
    }
    s, ids = scene.settings, scene.ids
    assert exists(s, "lf_cache_entry", "call_hash", ids["c2"])
    assert exists(s, "lf_call", "hash", ids["c7"])  # returned by a kept call
    assert exists(s, "lf_file", "hash", ids["w2"])
    assert exists(s, "lf_tag", "entity_id", ids["w2"])
    assert value_store(s).get(ids["blob"]) == BLOB
    assert not exists(s, "lf_value", "hash", ids["v5"])


def test_status_limits_the_runs_removed(scene: Scene) -> None:
    report = prune(scene.settings, MONTH, status="failed")
    assert report.run_ids == [scene.ids["failed"]]
    assert removed(report) == {"run": 1, "task_run": 1, "log_record": 1, "argument": 1, "value": 1}
    assert exists(scene.settings, "lf_run", "id", scene.ids["old"])


def test_dry_run_reports_and_deletes_nothing(scene: Scene) -> None:
    before = counts(scene.settings)
    dry = prune(scene.settings, MONTH, dry_run=True)
    assert dry.dry_run and removed(dry)["run"] == 2 and removed(dry)["blob"] == 1
    assert counts(scene.settings) == before
    assert value_store(scene.settings).exists(scene.ids["blob"])
    real = prune(scene.settings, MONTH)
    assert real.removed == dry.removed


def test_recent_runs_are_kept(scene: Scene) -> None:
    report = prune(scene.settings, timedelta(days=90))
    assert report.run_ids == []
    assert removed(report) == {}


def test_bad_arguments_are_usage_errors(scene: Scene) -> None:
    with pytest.raises(UsageError, match="unknown run status 'broken'"):
        prune(scene.settings, MONTH, status="broken")
    with pytest.raises(UsageError, match="never pruned"):
        prune(scene.settings, MONTH, status="running")
    with pytest.raises(UsageError, match="negative"):
        prune(scene.settings, -MONTH)


def test_cache_list_counts_entries_hits_and_misses(scene: Scene) -> None:
    stats = {s.task: s for s in cache_list(scene.settings)}
    assert set(stats) == {"sq", "old_only"}
    sq, old_only = stats["sq"], stats["old_only"]
    assert (sq.entries, sq.hits, sq.misses) == (1, 1, 3)  # tr3 hit; tr1, c7's run, tr4 executed
    assert sq.hit_rate == pytest.approx(0.25)
    assert (old_only.entries, old_only.hits, old_only.misses) == (2, 0, 1)
    assert [s.task for s in cache_list(scene.settings, task="old_*")] == ["old_only"]
    entries = cache_entries(scene.settings, task="old_only")
    assert {e.call_hash for e in entries} == {scene.ids["c2"], scene.ids["c6"]}
    with pytest.raises(NotFoundError):
        cache_list(scene.settings, task="nope")


def test_cache_clear_by_task_then_all(scene: Scene) -> None:
    assert cache_clear(scene.settings, task="old_only") == 2
    assert [s.entries for s in cache_list(scene.settings)] == [0, 1]  # old_only, sq
    assert cache_clear(scene.settings) == 1
    assert counts(scene.settings)["lf_cache_entry"] == 0
    # the cleared entries no longer protect their calls: the next prune collects c6
    report = prune(scene.settings, timedelta(days=90))
    assert report.removed["call"] == 1 and not exists(scene.settings, "lf_call", "hash", scene.ids["c6"])


def test_a_dead_running_run_is_marked_interrupted_then_pruned(scene: Scene) -> None:
    sql(scene.settings, f"UPDATE lf_run SET heartbeat_at = started_at WHERE id = '{scene.ids['running']}'")
    report = prune(scene.settings, MONTH, status="interrupted")
    assert report.reaped == [scene.ids["running"]]
    assert report.run_ids == [scene.ids["running"]]
    assert not exists(scene.settings, "lf_run", "id", scene.ids["running"])
