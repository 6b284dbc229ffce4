"""Export/import as JSON lines and push/pull between binds, SQLite <-> PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import ledgerflow
from ledgerflow import context, migrations, task
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.errors import ImportRecordsError, SchemaOutdatedError
from ledgerflow.ledger.schema import LEDGER_TABLES, Value
from ledgerflow.provenance.cache import cache_list
from ledgerflow.provenance.exchange import export, import_, pull, push, value_store
from ledgerflow.provenance.prov import prov_document, serialize_prov
from ledgerflow.testing.projects import make_project
from ledgerflow.testing.workload import LedgerWriter, Workload, generate_workload

BLOB = bytes(range(256)) * 40


def ledger(root: Path, entry: dict[str, Any], **options: Any) -> Settings:
    """A migrated project at ``root`` whose default database is ``entry``."""
    settings = make_project(root, entry, **options)
    migrations.upgrade(settings)
    return settings


def fresh_entry(request: pytest.FixtureRequest, dialect: str, path: Path) -> dict[str, Any]:
    if dialect == "sqlite":
        return {"dialect": "sqlite", "path": str(path)}
    session = request.getfixturevalue("pg_session")
    database = session.create_database()
    request.addfinalizer(lambda: session.release(database))
    return database.config_entry()


@pytest.fixture
def other_entry(request: pytest.FixtureRequest, database_dialect: str, tmp_path: Path) -> dict[str, Any]:
    """An empty database of the *other* dialect (PostgreSQL for SQLite and back)."""
    other = "postgresql" if database_dialect == "sqlite" else "sqlite"
    return fresh_entry(request, other, tmp_path / "other.db")


@pytest.fixture
def source(tmp_path: Path, migrated_database_entry: dict[str, Any], other_entry: dict[str, Any]) -> Settings:
    """A project with a filled ledger and a second configured database 'team'."""
    settings = ledger(tmp_path / "project", migrated_database_entry, databases={"team": other_entry})
    populate(settings)
    return settings


@pytest.fixture
def team(tmp_path: Path, other_entry: dict[str, Any]) -> Settings:
    """The 'team' database migrated as a ledger (its own project, its own value store)."""
    return ledger(tmp_path / "team", other_entry)


def populate(settings: Settings) -> Workload:
    """A generated workload plus what it lacks: a configuration, cache entries, a stored blob."""
    work = generate_workload(settings, calls=120, depth=6, seed=7)
    w = LedgerWriter(seed=3)
    big = w.value("a large result", type_name="bytes")
    row = w.rows[Value][-1]
    row.update(inline=None, store_key=big, size=len(BLOB))
    call = w.call(w.task("load"), [w.value("input.bin")], big)
    run = w.run("load", root_call=call)
    w.task_run(run, w.task("load"), call, task_name="load")
    for value in w.rows[Value]:
        value.setdefault("store_key", None)
    w.write(settings)
    value_store(settings).put(big, BLOB)
    statements = [
        ("INSERT INTO lf_configuration (hash, yaml, created_at) VALUES "
         "('cfg0', 'databases: {}', '2026-01-01 00:00:00')"),
        "UPDATE lf_run SET config_hash = 'cfg0'",
        ("INSERT INTO lf_cache_entry (task_hash, args_hash, call_hash, value_hash, run_id, created_at) "
         "SELECT c.task_hash, c.args_hash, c.hash, c.value_hash, NULL, c.created_at FROM lf_call c "
         "JOIN lf_task_def d ON d.hash = c.task_hash WHERE d.name IN ('align', 'load')"),
    ]
    execute(settings, *statements)
    return work


def execute(settings: Settings, *statements: str, bind: str = "default") -> None:
    database = Database(settings)
    try:
        with database.engine(bind).begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        database.dispose()


#: Tables of records; lf_value_chunk holds the value store of a PostgreSQL ledger (blobs).
RECORD_TABLES = [t for t in LEDGER_TABLES if t != "lf_value_chunk"]


def counts(settings: Settings, bind: str = "default") -> dict[str, int]:
    database = Database(settings)
    try:
        with database.engine(bind).connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in RECORD_TABLES}
    finally:
        database.dispose()


def lines(path: Path) -> list[str]:
    return sorted(path.read_text(encoding="utf-8").splitlines())


def kinds(path: Path) -> Counter[str]:
    return Counter(json.loads(line)["kind"] for line in lines(path))


def test_round_trip_sqlite_postgresql_and_back(
    request: pytest.FixtureRequest, source: Settings, team: Settings, tmp_path: Path,
    database_dialect: str,
) -> None:
    first = tmp_path / "first.jsonl"
    count = export(source, out=first)
    exported = kinds(first)
    assert count == sum(exported.values())
    assert set(exported) == {
        "configuration", "task_def", "value", "value_edge", "file", "argument", "call",
        "call_edge", "run", "task_run", "log_record", "cache_entry", "tag",
    }
    report = import_(team, first)
    assert report.added == {kind: exported.get(kind, 0) for kind in report.added}
    assert report.total_skipped == 0
    assert counts(team)["lf_run"] == counts(source)["lf_run"]
    assert value_store(team).get(_stored_key(first)) == BLOB  # the blob moved to team's store

    second = tmp_path / "second.jsonl"
    export(team, out=second)
    assert lines(second) == lines(first)  # record-by-record equality across dialects

    back = ledger(tmp_path / "back", fresh_entry(request, database_dialect, tmp_path / "back.db"))
    import_(back, second)
    third = tmp_path / "third.jsonl"
    export(back, out=third)
    assert lines(third) == lines(first)
    assert counts(back) == counts(source)


def _stored_key(path: Path) -> str:
    for line in lines(path):
        record = json.loads(line)
        if "blob" in record:
            assert base64.b64decode(record["blob"]) == BLOB
            return str(record["data"]["store_key"])
    raise AssertionError("no value carries a blob")


def test_import_twice_adds_nothing(source: Settings, team: Settings, tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    count = export(source, out=path)
    assert import_(team, path).total_added == count
    before = counts(team)
    again = import_(team, path)
    assert again.total_added == 0 and again.total_updated == 0
    assert again.total_skipped == count
    assert again.skipped["log_record"] == kinds(path)["log_record"]
    assert counts(team) == before


def test_partial_overlap_adds_only_the_rest(source: Settings, team: Settings, tmp_path: Path) -> None:
    database = Database(source)
    with database.engine().connect() as conn:
        some = list(conn.execute(text("SELECT id FROM lf_run ORDER BY started_at")).scalars())[:3]
    database.dispose()
    part, whole = tmp_path / "part.jsonl", tmp_path / "whole.jsonl"
    n_part = export(source, runs=[some[0], some[1][:10], some[2]], out=part)
    n_whole = export(source, out=whole)
    assert kinds(part)["run"] == 3 and n_part < n_whole
    assert import_(team, part).total_added == n_part
    report = import_(team, whole)
    assert report.total_added == n_whole - n_part
    assert report.total_skipped == n_part
    assert counts(team) == counts(source)


def test_export_of_selected_runs_holds_what_they_reach(source: Settings, tmp_path: Path) -> None:
    database = Database(source)
    with database.engine().connect() as conn:
        chain = conn.execute(text("SELECT id FROM lf_run WHERE entry_task = 'chain'")).scalar_one()
    database.dispose()
    path = tmp_path / "chain.jsonl"
    export(source, runs=[chain], out=path)
    got = kinds(path)
    # the chain run: 1 run, its 7 task runs and calls (chain + 6 steps), no file, no log
    assert (got["run"], got["task_run"], got["call"], got["call_edge"]) == (1, 7, 7, 6)
    assert got["file"] == 0 and got["log_record"] == 0
    assert got["task_def"] == 2 and got["configuration"] == 1
    values = {json.loads(line)["key"] for line in lines(path) if '"kind":"value"' in line}
    assert len(values) == got["value"] == len(set(values))  # content-addressed records once


def _corrupt(path: Path, target: Path, kind: str, change: Callable[[dict[str, Any]], Any] | str) -> int:
    """Copy ``path`` with the last record of ``kind`` changed (or replaced by a string)."""
    rows = path.read_text(encoding="utf-8").splitlines()
    number = max(i for i, line in enumerate(rows) if json.loads(line)["kind"] == kind)
    record = json.loads(rows[number])
    if isinstance(change, str):
        rows[number] = change
    else:
        change(record)
        rows[number] = json.dumps(record)
    target.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return number + 1


CORRUPTIONS: list[tuple[str, str, Callable[[dict[str, Any]], Any] | str, str]] = [
    ("bad json", "tag", '{"kind": "tag", ', "not valid JSON"),
    ("unknown kind", "tag", lambda r: r.update(kind="gadget"), "unknown kind"),
    ("missing field", "task_run", lambda r: r["data"].pop("status"), "'status' is required"),
    ("wrong type", "run", lambda r: r["data"].update(started_at=12), "'started_at' must be"),
    ("unknown field", "call", lambda r: r["data"].update(colour="red"), "unknown field 'colour'"),
    ("key mismatch", "value", lambda r: r.update(key="0" * 40), "does not match"),
    ("bytes vs size", "value", lambda r: r["data"].update(inline="AAAA", store_key=None, size=99),
     "do not match its size"),
    ("bad base64", "value", lambda r: r["data"].update(inline="%%%"), "'inline' must be base64"),
]


def test_corrupt_line_is_named_and_nothing_is_committed(source: Settings, team: Settings, tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    export(source, out=path)
    for name, kind, change, message in CORRUPTIONS:
        bad = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        number = _corrupt(path, bad, kind, change)
        with pytest.raises(ImportRecordsError) as info:
            import_(team, bad, batch_rows=50)  # earlier batches were written, then rolled back
        assert f"line {number}:" in str(info.value), name
        assert message in str(info.value), name
        assert sum(counts(team).values()) == 0, name
    assert not value_store(team).exists(_stored_key(path))  # the blob written early was undone


def test_a_record_missing_its_dependency_is_refused(source: Settings, team: Settings, tmp_path: Path) -> None:
    path, broken = tmp_path / "all.jsonl", tmp_path / "broken.jsonl"
    export(source, out=path)
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["kind"] != "task_def"]
    broken.write_text("\n".join(kept) + "\n")
    with pytest.raises(ImportRecordsError) as info:
        import_(team, broken)
    assert "could not be written" in str(info.value)
    assert sum(counts(team).values()) == 0


def test_push_and_pull_between_binds(source: Settings, team: Settings, tmp_path: Path) -> None:
    report = push(source, "team")
    assert report.total_added == sum(counts(source).values())
    mine, theirs = tmp_path / "mine.jsonl", tmp_path / "theirs.jsonl"
    export(source, out=mine)
    export(source, out=theirs, bind="team")
    assert lines(mine) == lines(theirs)
    assert push(source, "team").total_added == 0

    # the running runs end on the laptop: pushing again brings the team copy up to date
    execute(source, "UPDATE lf_task_run SET status = 'interrupted' WHERE status IN ('running', 'pending')",
            "UPDATE lf_run SET status = 'interrupted' WHERE status = 'running'")
    again = push(source, "team")
    assert again.updated["run"] == 2 and again.updated["task_run"] > 0
    assert again.total_added == 0
    export(source, out=mine)
    export(source, out=theirs, bind="team")
    assert lines(mine) == lines(theirs)

    # a colleague's run lands in the team database; pulling brings exactly its records
    w = LedgerWriter(now=datetime(2026, 2, 1, tzinfo=UTC), seed=11)
    task = w.task("colleague")
    call = w.call(task, [w.value("theirs")], w.value("result of theirs"))
    run = w.run("colleague", root_call=call)
    w.task_run(run, task, call, task_name="colleague")
    w.log(run, None, "hello from the team")
    w.write(team)
    pulled = pull(source, "team")
    added = {k: n for k, n in pulled.added.items() if n}
    assert added == {"task_def": 1, "value": 2, "argument": 1, "call": 1, "run": 1,
                     "task_run": 1, "log_record": 1}
    assert counts(source) == counts(team)


def test_push_needs_a_migrated_target(tmp_path: Path, migrated_database_entry: dict[str, Any]) -> None:
    empty = {"dialect": "sqlite", "path": str(tmp_path / "empty.db")}
    settings = ledger(tmp_path / "p", migrated_database_entry, databases={"empty": empty})
    with pytest.raises(SchemaOutdatedError) as info:
        push(settings, "empty")
    assert "database 'empty'" in str(info.value) and "holds no ledger" in str(info.value)
    assert "ledgerflow db upgrade" in str(info.value)


def test_prov_json_of_a_file(source: Settings) -> None:
    doc = json.loads(serialize_prov(prov_document(source, "out/run0/s1.vcf")))
    file_type = {"$": "lf:File", "type": "prov:QUALIFIED_NAME"}
    entities = {e["prov:label"] for e in doc["entity"].values() if e["prov:type"] == file_type}
    assert {"out/run0/s1.vcf", "out/run0/s1.bam", "data/run0/s1.fastq", "data/ref.fa"} <= entities
    labels = sorted(a["prov:label"] for a in doc["activity"].values())
    assert labels == ["align", "call_variants"]
    vcf = next(k for k, e in doc["entity"].items() if e["prov:label"] == "out/run0/s1.vcf")
    generated = [g for g in doc["wasGeneratedBy"].values() if g["prov:entity"] == vcf]
    assert len(generated) == 1
    caller = doc["activity"][generated[0]["prov:activity"]]
    assert caller["prov:label"] == "call_variants" and caller["lf:status"] == "done"
    used = {doc["entity"][u["prov:entity"]]["prov:label"] for u in doc["used"].values()
            if u["prov:activity"] == generated[0]["prov:activity"]}
    assert used == {"out/run0/s1.bam", "data/ref.fa"}
    informed = list(doc["wasInformedBy"].values())
    assert [doc["activity"][i["prov:informant"]]["prov:label"] for i in informed] == ["align"]
    assert all(a["prov:agent"] == "lf:user_ana" for a in doc["wasAssociatedWith"].values())


def test_prov_json_of_a_deep_value(source: Settings) -> None:
    database = Database(source)
    with database.engine().connect() as conn:
        deep = conn.execute(text("SELECT result_hash FROM lf_run WHERE entry_task = 'chain'")).scalar_one()
    database.dispose()
    doc = json.loads(serialize_prov(prov_document(source, deep[:12])))
    assert f"lf:value_{deep}" in doc["entity"]
    steps = [a for a in doc["activity"].values() if a["prov:label"] == "step"]
    assert len(steps) == 6  # the chain call only passes its last step's result on
    step_ids = {k for k, a in doc["activity"].items() if a["prov:label"] == "step"}
    chained = [i for i in doc["wasInformedBy"].values()
               if i["prov:informed"] in step_ids and i["prov:informant"] in step_ids]
    assert len(chained) == 5  # each step used the value the previous step generated


@task
def square(x: int) -> int:
    context.logger.info("squaring %s", x)
    return x * x


@task
def payload(n: int) -> bytes:
    return bytes(range(256)) * n


@task
def pipeline(n: int) -> list[object]:
    return [square(i) for i in range(n)] + [payload(8)]


def test_a_real_pipeline_moves_with_its_cache(
    tmp_path: Path, migrated_database_entry: dict[str, Any], other_entry: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = {"inline_max_bytes": 256}
    laptop = ledger(tmp_path / "laptop", migrated_database_entry, values=small)
    team = ledger(tmp_path / "team", other_entry, values=small)
    expected = [0, 1, 4, bytes(range(256)) * 8]
    assert ledgerflow.run(pipeline(3), settings=laptop) == expected
    assert ledgerflow.run(pipeline(3), settings=laptop) == expected  # served from the cache

    path, again = tmp_path / "laptop.jsonl", tmp_path / "team.jsonl"
    export(laptop, out=path)
    got = kinds(path)
    assert got["run"] == 2 and got["cache_entry"] == 5 and got["log_record"] == 3
    assert sum('"blob":' in line for line in lines(path)) == 2  # payload + the list holding it
    import_(team, path)
    export(team, out=again)
    assert lines(again) == lines(path)
    stats = {s.task.rsplit(".", 1)[-1]: s for s in cache_list(team)}
    assert (stats["square"].entries, stats["square"].misses) == (3, 3)

    # the imported cache serves the team: nothing runs again
    result = ledgerflow.execute(pipeline(3), settings=team)
    assert result.value == expected
    database = Database(team)
    with database.engine().connect() as conn:
        states = dict(conn.execute(text(
            f"SELECT status, count(*) FROM lf_task_run WHERE run_id = '{result.run_id}' GROUP BY status")).all())
    database.dispose()
    assert states == {"cached": 1}


def test_rows_added_meanwhile_by_another_writer_are_skipped(
    source: Settings, team: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL new rows are COPYed after an existence check; a row another writer adds
    between the check and the COPY must not fail the import (the batch is re-sent with
    ON CONFLICT DO NOTHING). Simulated by a check that finds nothing."""
    from ledgerflow.provenance import _exchange_write

    path = tmp_path / "all.jsonl"
    count = export(source, out=path)
    import_(team, path)
    monkeypatch.setattr(_exchange_write.RecordWriter, "_absent", lambda self, cursor, kind, rows: rows)
    again = import_(team, path)
    assert again.total_added == 0 and again.total_skipped == count


def test_log_keys_are_ledgerflow_hashes_and_older_sha1_files_still_import(
    source: Settings, team: Settings, tmp_path: Path
) -> None:
    import hashlib

    from ledgerflow.hashing import hash_bytes

    path, older = tmp_path / "all.jsonl", tmp_path / "older.jsonl"
    export(source, out=path)
    rewritten = []
    logs = 0
    for line in lines(path):
        record = json.loads(line)
        if record["kind"] == "log_record":
            data = record["data"]
            identity = json.dumps(
                [data.get(c) for c in ("run_id", "task_run_id", "created_at", "level", "logger",
                                       "message")],
                separators=(",", ":"), ensure_ascii=False,
            ).encode()
            assert record["key"] == hash_bytes(identity)
            record["key"] = hashlib.sha1(identity).hexdigest()  # as earlier versions wrote it
            logs += 1
        rewritten.append(json.dumps(record))
    older.write_text("\n".join(rewritten) + "\n")
    assert logs and import_(team, older).added["log_record"] == logs
    broken = tmp_path / "broken.jsonl"
    broken.write_text(older.read_text().replace('"kind": "log_record", "key": "', '"kind": "log_record", "key": "0', 1))
    with pytest.raises(ImportRecordsError, match="does not match"):
        import_(team, broken)


def test_the_configuration_hash_is_a_ledgerflow_hash(source: Settings) -> None:
    from ledgerflow.hashing import HEX_LENGTH, hash_bytes

    assert source.hash == hash_bytes(source.redacted_yaml().encode())
    assert len(source.hash) == HEX_LENGTH
