"""Cached results that wrote rows stay honest (both dialects).

A task writing rows through ``context.session`` / ``context.db`` has them recorded in
``lf_written``; its cache hit is used only while they exist, checked in one query per table.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from ledgerflow import migrations
from ledgerflow.cli.main import main
from ledgerflow.config import load_settings
from ledgerflow.db import Database
from ledgerflow.testing.projects import fresh_models  # noqa: F401  (fixture)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MAIN = "tuto.data_reduction.tasks:main"
PLUGIN = "tuto.data_reduction"


@pytest.fixture
def tutorial(tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
             fresh_models: None, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A migrated copy of examples/ (the tutorial's plugin) whose database is the test's."""
    root = tmp_path / "examples"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(
        "ledgerflow.db*", "out", ".ledgerflow", "__pycache__", "quickstart.sh", "genomics"))
    config = yaml.safe_load((root / "ledgerflow.yml").read_text())
    config["databases"]["default"] = migrated_database_entry
    (root / "ledgerflow.yml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(root)
    monkeypatch.delenv("LEDGERFLOW_CONFIG", raising=False)
    migrations.upgrade(load_settings(root / "ledgerflow.yml"))
    return root


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), f"ledgerflow {' '.join(args)}: {out}{err}"
    return out


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    return json.loads(cli(capsys, "run", *args, "--json"))  # type: ignore[no-any-return]


def statuses(root: Path, run_id: str) -> dict[str, list[str]]:
    """task name -> the statuses of its task runs in the run."""
    found: dict[str, list[str]] = {}
    with Database(load_settings(root / "ledgerflow.yml")) as db, db.engine().connect() as conn:
        for name, status in conn.execute(
            sa.text("SELECT task_name, status FROM lf_task_run WHERE run_id = :r"), {"r": run_id}
        ):
            found.setdefault(name.rpartition(".")[2], []).append(status)
    return {name: sorted(s) for name, s in found.items()}


def results(root: Path) -> list[tuple[int, int]]:
    with Database(load_settings(root / "ledgerflow.yml")) as db, db.engine().connect() as conn:
        return sorted(
            (row[0], row[1])
            for row in conn.execute(sa.text("SELECT input_value, result FROM computation_result"))
        )


@pytest.fixture
def plugin_queries(tutorial: Path) -> Iterator[list[str]]:
    """Every statement any engine sends that reads computation_result."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "computation_result" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", listen)


def test_tutorial_downgrade_upgrade_reruns_the_calls_that_wrote_rows(
    tutorial: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_json(capsys, MAIN, "--n", "3", "--multiplier", "2")
    assert first["status"] == "done" and first["result"] == "[0, 20, 40]"
    assert results(tutorial) == [(0, 0), (10, 20), (20, 40)]
    second = run_json(capsys, MAIN, "--n", "3", "--multiplier", "2")
    assert second["counts"]["done"] == 0  # rows intact: all from the cache

    cli(capsys, "db", "downgrade", f"{PLUGIN}@base", "--yes")
    cli(capsys, "db", "upgrade")
    assert results(tutorial) == []

    explained = cli(capsys, "explain", MAIN, "--n", "3", "--multiplier", "2")
    assert "3 rows of computation_result (bind default) are gone" in explained

    third = run_json(capsys, MAIN, "--n", "3", "--multiplier", "2")
    assert third["status"] == "done" and third["result"] == "[0, 20, 40]"
    assert results(tutorial) == [(0, 0), (10, 20), (20, 40)]
    ran = statuses(tutorial, third["run_id"])
    assert ran["compute"] == ["done"] * 3
    assert ran["main"] == ["done"]
    assert ran["generate"] == ["cached"] * 3  # wrote nothing: unaffected
    fourth = run_json(capsys, MAIN, "--n", "3", "--multiplier", "2")
    assert fourth["counts"]["done"] == 0  # the rerun's rows count from now on


def test_deleting_one_row_reruns_only_the_call_that_wrote_it(
    tutorial: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_json(capsys, MAIN, "--n", "4", "--multiplier", "3")
    with Database(load_settings(tutorial / "ledgerflow.yml")) as db, db.engine().begin() as conn:
        conn.execute(sa.text("DELETE FROM computation_result WHERE input_value = 20"))

    explained = cli(capsys, "explain", MAIN, "--n", "4", "--multiplier", "3")
    assert "1 row of computation_result (bind default) is gone" in explained

    again = run_json(capsys, MAIN, "--n", "4", "--multiplier", "3")
    ran = statuses(tutorial, again["run_id"])
    assert ran["compute"] == ["cached", "cached", "cached", "done"]
    assert ran["main"] == ["done"]  # its cached value stood for the deleted row too
    assert results(tutorial) == [(0, 0), (10, 30), (20, 60), (30, 90)]


def test_the_check_is_one_query_per_table_not_per_call(
    tutorial: Path, capsys: pytest.CaptureFixture[str], plugin_queries: list[str]
) -> None:
    run_json(capsys, MAIN, "--n", "30", "--multiplier", "5")
    plugin_queries.clear()
    again = run_json(capsys, MAIN, "--n", "30", "--multiplier", "5")
    assert again["counts"]["done"] == 0
    # main's hit checks the 30 rows its calls wrote: one query for the table, not 30
    assert len(plugin_queries) == 1, plugin_queries

    cli(capsys, "db", "downgrade", f"{PLUGIN}@base", "--yes")
    cli(capsys, "db", "upgrade")
    plugin_queries.clear()
    rerun = run_json(capsys, MAIN, "--n", "30", "--multiplier", "5")
    ran = statuses(tutorial, rerun["run_id"])
    assert ran["compute"] == ["done"] * 30
    checks = [q for q in plugin_queries if "id_computation_result IN" in q]
    # main's hit, then the 30 hits of compute together (compute's own reads filter by
    # input_value, not by the primary key)
    assert len(checks) == 2, plugin_queries


WRITERS = '''
from sqlalchemy import insert, select

from ledgerflow import context, task
from tuto.data_reduction.models import ComputationResult as R


def row(key: int, i: int) -> dict[str, int]:
    return {"id_computation_result": key + i, "input_value": key + i, "multiplier": -1, "result": i}


@task
def by_add(i: int) -> int:
    context.session.add(R(**row(1000, i)))
    return i


@task
def by_core(i: int) -> int:
    context.session.connection().execute(insert(R.__table__).values(**row(2000, i)))
    return i


@task
def by_bulk(i: int) -> int:
    context.db.bulk_insert(R, [row(3000, i)])
    return i


@task
def by_upsert(i: int) -> int:
    context.db.upsert(R, [row(4000, i)], on=["id_computation_result"])
    return i


@task
def rolled_back(i: int) -> int:
    context.session.add(R(**row(5000, i)))
    context.session.flush()
    context.session.rollback()
    return i


@task
def reader(i: int) -> int:
    context.session.execute(select(R).limit(1)).all()
    return i


@task
def main(n: int = 2) -> list[int]:
    return [
        f(i) for i in range(n)
        for f in (by_add, by_core, by_bulk, by_upsert, rolled_back, reader)
    ]
'''


def written_keys(root: Path) -> dict[str, set[int]]:
    """task name -> the computation_result keys recorded for its calls."""
    sql = sa.text(
        "SELECT d.name, w.table_name, w.row_key FROM lf_written w "
        "JOIN lf_call c ON c.hash = w.call_hash JOIN lf_task_def d ON d.hash = c.task_hash"
    )
    found: dict[str, set[int]] = {}
    with Database(load_settings(root / "ledgerflow.yml")) as db, db.engine().connect() as conn:
        for name, table, text_key in conn.execute(sql):
            assert table == "computation_result"
            key = json.loads(text_key)["key"]
            found.setdefault(name, set()).add(key["id_computation_result"])
    return found


@pytest.mark.parametrize("executor", ["local", "threads", "processes", "dask"])
def test_each_way_of_writing_is_recorded_and_checked(
    tutorial: Path, capsys: pytest.CaptureFixture[str], executor: str
) -> None:
    (tutorial / "writers.py").write_text(WRITERS)
    first = run_json(capsys, "writers.py:main", "--executor", executor)
    assert first["status"] == "done", first
    keys = written_keys(tutorial)
    assert keys.pop("main") == {1000, 1001, 2000, 2001, 3000, 3001, 4000, 4001}
    assert keys == {
        "by_add": {1000, 1001}, "by_core": {2000, 2001},
        "by_bulk": {3000, 3001}, "by_upsert": {4000, 4001},
    }  # neither the rolled-back insert nor the reader recorded anything

    with Database(load_settings(tutorial / "ledgerflow.yml")) as db, db.engine().begin() as conn:
        conn.execute(sa.text(
            "DELETE FROM computation_result WHERE id_computation_result IN (1001, 2000, 3001, 4000)"
        ))
    again = run_json(capsys, "writers.py:main", "--executor", executor)
    ran = statuses(tutorial, again["run_id"])
    assert ran == {
        "main": ["done"],
        "by_add": ["cached", "done"], "by_core": ["cached", "done"],
        "by_bulk": ["cached", "done"], "by_upsert": ["cached", "done"],
        "rolled_back": ["cached", "cached"], "reader": ["cached", "cached"],
    }
    assert run_json(capsys, "writers.py:main", "--executor", executor)["counts"]["done"] == 0


def test_explain_says_the_table_is_gone(tutorial: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, MAIN, "--n", "2", "--multiplier", "7")
    settings = load_settings(tutorial / "ledgerflow.yml")
    with Database(settings, role="admin") as db, db.engine().begin() as conn:
        conn.execute(sa.text("DROP TABLE computation_result"))  # behind the migrations' back
    explained = cli(capsys, "explain", MAIN, "--n", "2", "--multiplier", "7")
    assert "main: would run" in explained
    assert "table computation_result (bind default) is gone" in explained


def test_prune_removes_the_rows_of_calls_it_removes(
    tutorial: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import timedelta

    from ledgerflow.api import prune

    run_json(capsys, MAIN, "--n", "2", "--multiplier", "4")
    settings = load_settings(tutorial / "ledgerflow.yml")

    def written() -> int:
        with Database(settings) as db, db.engine().connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM lf_written")).scalar_one())

    assert written() == 2 + 2 + 2  # compute's rows, main's, and the marks of both tasks
    report = prune(settings, timedelta(0))
    assert report.removed["written"] == 6
    assert written() == 0


CHAIN = '''
from ledgerflow import context, task
from tuto.data_reduction.models import ComputationResult as R


@task
def step(i: int, previous: int) -> int:
    context.db.get_or_create(
        R, filter_by={"input_value": 7000 + i, "multiplier": 9}, defaults={"result": previous + 1}
    )
    return previous + 1


@task
def chain(n: int = 40) -> int:
    value = 0
    for i in range(n):
        value = step(i, value)
    return value
'''


def test_a_chain_of_hits_is_checked_in_a_few_queries(
    tutorial: Path, capsys: pytest.CaptureFixture[str], plugin_queries: list[str]
) -> None:
    (tutorial / "chained.py").write_text(CHAIN)
    assert run_json(capsys, "chained.py:chain")["result"] == "40"
    plugin_queries.clear()
    again = run_json(capsys, "chained.py:chain", "--rerun", "chain")
    ran = statuses(tutorial, again["run_id"])
    assert ran["step"] == ["cached"] * 40  # each hit waits for the one before: 40 batches
    checks = [q for q in plugin_queries if "id_computation_result IN" in q]
    assert len(checks) == 4, len(checks)  # a few hit by hit, then all of them at once

    with Database(load_settings(tutorial / "ledgerflow.yml")) as db, db.engine().begin() as conn:
        conn.execute(sa.text("DELETE FROM computation_result WHERE input_value = 7030"))
    third = run_json(capsys, "chained.py:chain", "--rerun", "chain")
    ran = statuses(tutorial, third["run_id"])
    assert ran["step"] == ["cached"] * 39 + ["done"]  # found among the prefetched rows
    assert results(tutorial)[-10:][0] == (7030, 31)


def test_a_sub_call_taken_unchecked_still_counts_for_its_parent(
    tutorial: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A result a run takes without the check (another run's, say) still gives its parent
    the rows it relies on."""
    from types import SimpleNamespace

    from ledgerflow.engine.written import WrittenRows

    run_json(capsys, MAIN, "--n", "1", "--multiplier", "6")
    settings = load_settings(tutorial / "ledgerflow.yml")
    with Database(settings) as db:
        with db.engine().connect() as conn:
            call_hash, task_hash = conn.execute(sa.text(
                "SELECT c.hash, c.task_hash FROM lf_call c "
                "JOIN lf_task_def d ON d.hash = c.task_hash WHERE d.name = 'compute'"
            )).one()
        child = SimpleNamespace(call_hash=call_hash, phase="cached", task_hash=task_hash)
        parent = SimpleNamespace(children=[child], task_hash="p" * 40)
        recorded: list[tuple[str, ...]] = []
        recorder = SimpleNamespace(written=lambda rows: recorded.extend(rows))
        WrittenRows(db, db.engine(), "r1").finished(parent, "c" * 40, recorder)  # type: ignore[arg-type]
    keys = [json.loads(row[3])["key"] for row in recorded if row[0] == "c" * 40]
    assert keys == [{"id_computation_result": 1}]


def test_exported_calls_bring_their_written_rows(
    tutorial: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest,
    database_dialect: str, tmp_path: Path,
) -> None:
    """A teammate importing the records has a cache hit only while *their* database holds
    the rows: an empty table there makes the calls run again."""
    from ledgerflow.api import export, import_

    run_json(capsys, MAIN, "--n", "2", "--multiplier", "8")
    records = tmp_path / "records.jsonl"
    export(load_settings(tutorial / "ledgerflow.yml"), output=records)
    assert '"kind":"written"' in records.read_text()

    if database_dialect == "sqlite":
        entry: dict[str, Any] = {"dialect": "sqlite", "path": str(tmp_path / "teammate.db")}
    else:
        session = request.getfixturevalue("pg_session")
        database = session.create_database()
        request.addfinalizer(lambda: session.release(database))
        entry = database.config_entry()
    mate = tmp_path / "teammate"
    mate.mkdir()
    config = yaml.safe_load((tutorial / "ledgerflow.yml").read_text())
    config["databases"]["default"] = entry
    (mate / "ledgerflow.yml").write_text(yaml.safe_dump(config))
    migrations.upgrade(load_settings(mate / "ledgerflow.yml"))
    import_(load_settings(mate / "ledgerflow.yml"), records)

    ran = json.loads(cli(capsys, "--config", str(mate / "ledgerflow.yml"), "run", MAIN,
                         "--n", "2", "--multiplier", "8", "--json"))
    assert statuses(mate, ran["run_id"])["compute"] == ["done", "done"]
    assert results(mate) == [(0, 0), (10, 80)]


def test_a_result_waited_for_is_checked_against_fresh_marks(
    tutorial: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that learnt early that a task never wrote rows asks again for the results it
    waited for (another run may have computed them since, writing rows)."""
    from ledgerflow.engine.cache import CacheHit
    from ledgerflow.engine.written import WrittenRows
    settings = load_settings(tutorial / "ledgerflow.yml")
    tasks = __import__("tuto.data_reduction.tasks", fromlist=["compute"])
    with Database(settings) as db:
        waiting = WrittenRows(db, db.engine(), "waiting-run")
        waiting._ask_writers({tasks.compute.code.hash})  # before any call of it wrote rows
        run_json(capsys, MAIN, "--n", "1", "--multiplier", "5")  # another run computes it
        with db.engine().begin() as conn:
            conn.execute(sa.text("DELETE FROM computation_result"))
            row = conn.execute(sa.text(
                "SELECT e.task_hash, e.args_hash, e.call_hash, e.value_hash, e.run_id "
                "FROM lf_cache_entry e WHERE e.task_hash = :t"
            ), {"t": tasks.compute.code.hash}).one()
        task_hash, args_hash, call_hash, value_hash, run_id = row
        hit = CacheHit(
            task_hash=task_hash, args_hash=args_hash, call_hash=call_hash, value_hash=value_hash,
            run_id=run_id, format="json", inline=None, store_key=None, signature=None, writer=None,
        )
        assert waiting.check([hit]) == {}  # what it learnt first: nothing to check
        assert waiting.check([hit], fresh=True) == {
            hit.call_hash: "1 row of computation_result (bind default) is gone"
        }
