"""The provenance SQL views, queried with raw SQL on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from ledgerflow import migrations
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.ledger.schema import TaskRun
from ledgerflow.provenance import views
from ledgerflow.testing.projects import make_project
from ledgerflow.testing.workload import LedgerWriter

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
VIEWS_REVISION = "f8fc3916e6b0"
TABLES_REVISION = "d9532b4114de"


@pytest.fixture
def ledger(tmp_path: Path, migrated_database_entry: dict[str, Any]) -> Settings:
    return make_project(tmp_path, migrated_database_entry)


def sql(settings: Settings, statement: str) -> list[dict[str, Any]]:
    """Rows of a raw SQL query, as the runtime (user) role."""
    database = Database(settings)
    try:
        with database.engine().connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(statement))]
    finally:
        database.dispose()


def test_latest_task_run_per_cache_key(ledger: Settings) -> None:
    w = LedgerWriter(now=T0)
    align = w.task("align")
    x, y = w.value("x"), w.value("y")
    call_x = w.call(align, [x], w.value("X"))
    args_x, args_y = w.arguments([x]), w.arguments([y])
    old = w.run("main", status="failed", started_at=T0)
    w.task_run(old, align, None, status="failed", task_name="align", args_hash=args_x,
               started_at=T0, error=("ValueError", "bad"))
    only_old = w.task_run(old, align, None, status="failed", task_name="align", args_hash=args_y,
                          started_at=T0, error=("ValueError", "bad y"))
    new = w.run("main", started_at=T0 + HOUR)
    w.task_run(new, align, None, status="failed", task_name="align", args_hash=args_x,
               started_at=T0 + HOUR, error=("OSError", "flaky"))
    retried = w.task_run(new, align, call_x, status="done", task_name="align",
                         started_at=T0 + HOUR + timedelta(seconds=1))
    w.rows[TaskRun][-1]["attempt"] = 2
    w.write(ledger)

    rows = sql(ledger, "SELECT args_hash, task_run_id, run_id, status, attempt, call_hash "
                       "FROM lf_latest_task_run ORDER BY args_hash")
    got = {r["args_hash"]: r for r in rows}
    assert set(got) == {args_x, args_y}
    assert got[args_x]["task_run_id"] == retried
    assert (got[args_x]["run_id"], got[args_x]["status"], got[args_x]["attempt"]) == (new, "done", 2)
    assert got[args_x]["call_hash"] == call_x
    assert (got[args_y]["task_run_id"], got[args_y]["status"]) == (only_old, "failed")


def test_file_origin_names_the_producing_task_run(ledger: Settings) -> None:
    w = LedgerWriter(now=T0)
    main, align, split = w.task("main"), w.task("align"), w.task("split")
    ref = w.file("data/ref.fa", "ACGT")
    bam = w.file("out/s1.bam", "aligned")
    parts = [w.file("out/part0.txt", "p0"), w.file("out/part1.txt", "p1")]
    listing = w.container(parts)
    main_call = w.call(main, [ref], bam)  # main only returns align's result: not a producer
    align_call = w.call(align, [ref], bam, parent=main_call)
    split_call = w.call(split, [bam], listing)
    first = w.run("main", started_at=T0, root_call=main_call)
    top = w.task_run(first, main, main_call, task_name="main", started_at=T0)
    producer = w.task_run(first, align, align_call, task_name="align", parent_id=top, started_at=T0)
    splitter = w.task_run(first, split, split_call, task_name="split", started_at=T0)
    second = w.run("main", started_at=T0 + HOUR, root_call=main_call)
    w.task_run(second, align, align_call, status="cached", task_name="align", started_at=T0 + HOUR)
    w.write(ledger)

    rows = sql(ledger, "SELECT path, task_run_id, task_name, run_id, run_status, call_hash "
                       "FROM lf_file_origin ORDER BY path")
    assert [r["path"] for r in rows] == [
        "data/ref.fa", "out/part0.txt", "out/part1.txt", "out/s1.bam",
    ]
    by_path = {r["path"]: r for r in rows}
    assert by_path["data/ref.fa"]["task_run_id"] is None  # an input: no producer
    assert by_path["data/ref.fa"]["run_id"] is None
    assert (by_path["out/s1.bam"]["task_run_id"], by_path["out/s1.bam"]["task_name"]) == (producer, "align")
    assert by_path["out/s1.bam"]["run_id"] == first
    assert by_path["out/s1.bam"]["call_hash"] == align_call
    for part in ("out/part0.txt", "out/part1.txt"):
        assert by_path[part]["task_run_id"] == splitter
        assert by_path[part]["run_status"] == "done"


def test_failed_task_runs_with_exceptions(ledger: Settings) -> None:
    w = LedgerWriter(now=T0)
    align = w.task("align")
    good = w.call(align, [w.value(1)], w.value(2))
    run = w.run("main", status="failed", started_at=T0)
    w.task_run(run, align, good, task_name="align", started_at=T0)
    failed = w.task_run(run, align, None, status="failed", task_name="align",
                        args_hash=w.arguments([w.value(3)]), started_at=T0 + HOUR,
                        error=("ValueError", "bad quality in sample 3"))
    w.write(ledger)

    rows = sql(ledger, "SELECT task_run_id, run_id, task_name, exception_type, exception_message, "
                       "traceback, started_at, ended_at, run_status, run_user FROM lf_failed_task_run")
    assert len(rows) == 1
    row = rows[0]
    assert (row["task_run_id"], row["run_id"], row["task_name"]) == (failed, run, "align")
    assert (row["exception_type"], row["exception_message"]) == ("ValueError", "bad quality in sample 3")
    assert "ValueError" in row["traceback"]
    assert row["started_at"] is not None and row["ended_at"] is not None
    assert (row["run_status"], row["run_user"]) == ("failed", "ana")


def test_migration_creates_and_drops_the_views(ledger: Settings) -> None:
    names = {view.name for view in views.VIEWS}

    def present() -> set[str]:
        database = Database(ledger)
        try:
            return set(inspect(database.engine()).get_view_names()) & names
        finally:
            database.dispose()

    assert present() == names
    migrations.downgrade(ledger, TABLES_REVISION)
    assert present() == set()
    with pytest.raises(DBAPIError):
        sql(ledger, "SELECT * FROM lf_failed_task_run")
    migrations.upgrade(ledger)
    assert present() == names


def test_migration_holds_the_current_view_definitions() -> None:
    """A change to a view in views.py needs a new revision; this catches a forgotten one."""
    folder = Path(migrations.__file__).parent / "versions"
    path = next(folder.glob(f"*_{VIEWS_REVISION}_*.py"))
    spec = importlib.util.spec_from_file_location("views_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    frozen = {name: select.strip() for name, select in module.VIEWS.items()}
    assert frozen == {view.name: view.select.strip() for view in views.VIEWS}


def test_create_views_on_a_ledger_made_from_the_models(tmp_path: Path) -> None:
    from ledgerflow.ledger.schema import LedgerBase

    settings = make_project(tmp_path, {"dialect": "sqlite", "path": str(tmp_path / "m.db")})
    database = Database(settings, role="admin")
    try:
        with database.engine().begin() as conn:
            LedgerBase.metadata.create_all(conn)
            views.create_views(conn)
            views.create_views(conn)  # re-creating is allowed
            assert conn.execute(text("SELECT count(*) FROM lf_latest_task_run")).scalar() == 0
            views.drop_views(conn)
            assert not set(inspect(conn).get_view_names()) & {v.name for v in views.VIEWS}
    finally:
        database.dispose()


def test_schema_docs_are_up_to_date() -> None:
    """docs/schema.md is what scripts/gen_schema_docs.py writes from the current models."""
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_schema_docs", root / "scripts" / "gen_schema_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    for view in views.VIEWS:
        assert f"### `{view.name}`" in text
    assert "### `lf_task_run`" in text and "TIMESTAMP WITH TIME ZONE" in text
    committed = (root / "docs" / "schema.md").read_text(encoding="utf-8")
    assert committed == text, "docs/schema.md is stale: run python scripts/gen_schema_docs.py"
