"""What one run writes to the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import ledgerflow
from ledgerflow import context, task
from ledgerflow.config.settings import Settings
from ledgerflow.hashing import combine, hash_value
from ledgerflow.testing.pipelines import LedgerRows


@task
def generate(i: int) -> int:
    return i * 10


@task(version="2")
def compute(some_data: int, multiplier: int) -> int:
    context.logger.info("computing %s x %s", some_data, multiplier)
    return some_data * multiplier


@task
def main(n: int = 3, multiplier: int = 2) -> list[int]:
    return [compute(generate(i), multiplier) for i in range(n)]


def test_a_run_returns_the_concrete_result(ledger_settings: Settings) -> None:
    assert ledgerflow.run(main(n=3), settings=ledger_settings) == [0, 20, 40]
    assert ledgerflow.run([generate(1), {"x": generate(2)}], settings=ledger_settings) == [
        10, {"x": 20},
    ]  # fmt: skip
    assert ledgerflow.run(7, settings=ledger_settings) == 7


def test_the_run_row(ledger_settings: Settings, ledger: LedgerRows) -> None:
    result = ledgerflow.execute(
        main(n=2), settings=ledger_settings, command_line="ledgerflow run tuto:main --n 2",
        tags={"sample": "S4"},
    )  # fmt: skip
    (run,) = ledger.rows("lf_run")
    assert run["id"] == result.run_id and run["status"] == "done"
    assert run["entry_task"] == main.fullname
    assert json.loads(run["arguments"]) == {"n": 2, "multiplier": 2}
    assert run["command_line"] == "ledgerflow run tuto:main --n 2"
    assert run["started_at"] <= run["ended_at"] and run["heartbeat_at"] is not None
    assert run["host"] and run["user"] and run["pid"] > 0
    assert run["executor"] == "local" and run["library_version"] == ledgerflow.__version__
    assert run["config_hash"] == ledger_settings.hash
    (config,) = ledger.rows("lf_configuration")
    assert config["hash"] == ledger_settings.hash and "databases" in config["yaml"]
    for entry in ledger_settings.databases.values():
        for creds in (entry.admin, entry.user):
            if creds is not None and creds.password:
                assert creds.password not in config["yaml"]
    assert run["code_version"] is None  # the temporary project is not in a git work tree
    assert ledger.rows("lf_tag")[0] | {"created_at": None, "writer": None} == {
        "entity_id": result.run_id, "key": "sample", "value": "S4", "entity_kind": "run",
        "created_at": None, "writer": None,
    }  # fmt: skip
    root = [r for r in ledger.rows("lf_task_run") if r["parent_id"] is None]
    assert run["root_call_hash"] == root[0]["call_hash"]
    assert run["result_hash"] == hash_value([0, 20])


def test_the_git_commit_of_the_work_tree_is_recorded(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    git = ledger_settings.root / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(sha + "\n")
    ledgerflow.run(generate(1), settings=ledger_settings)
    assert ledger.rows("lf_run")[0]["code_version"] == sha


def test_task_runs_calls_values_and_edges(ledger_settings: Settings, ledger: LedgerRows) -> None:
    result = ledgerflow.execute(main(n=2, multiplier=3), settings=ledger_settings)
    assert result.status == "done" and result.value == [0, 30]
    assert {k: v for k, v in result.counts.items() if v} == {"done": 5}
    runs = ledger.rows("lf_task_run")
    by_name: dict[str, list[dict]] = {}
    for row in runs:
        by_name.setdefault(row["task_name"], []).append(row)
    (root,) = by_name[main.fullname]
    assert len(by_name[generate.fullname]) == 2 and len(by_name[compute.fullname]) == 2
    for row in runs:
        assert row["run_id"] == result.run_id and row["status"] == "done"
        assert row["attempt"] == 1 and row["worker"] and row["duration"] >= 0
        assert row["started_at"] is not None and row["ended_at"] >= row["started_at"]
        assert row["parent_id"] == (None if row is root else root["id"])
        (call,) = ledger.rows("lf_call", hash=row["call_hash"])
        assert call["hash"] == combine(row["task_hash"], row["args_hash"], row["value_hash"])
        assert (call["task_hash"], call["args_hash"], call["value_hash"]) == (
            row["task_hash"], row["args_hash"], row["value_hash"],
        )  # fmt: skip
        key = {"task_hash": row["task_hash"], "args_hash": row["args_hash"]}
        (entry,) = ledger.rows("lf_cache_entry", **key)
        assert entry["value_hash"] == row["value_hash"] and entry["run_id"] == result.run_id

    # the task definitions keep their source and version
    (definition,) = ledger.rows("lf_task_def", hash=root["task_hash"])
    assert definition["name"] == "main"
    assert "compute(generate(i), multiplier)" in definition["source"]
    assert compute.fullname in json.loads(definition["helpers"])
    assert ledger.rows("lf_task_def", name="compute")[0]["version"] == "2"

    # arguments are keyed by the argument hash, with their names and values
    args = ledger.rows("lf_argument", args_hash=root["args_hash"], order_by="position")
    assert [(a["key"], a["value_hash"]) for a in args] == [
        ("n", hash_value(2)), ("multiplier", hash_value(3)),
    ]  # fmt: skip

    # the result list, its preview and one value edge per element
    (value,) = ledger.rows("lf_value", hash=root["value_hash"])
    assert value["type_name"] == "builtins.list" and value["preview"] == "[0, 30]"
    assert value["inline"] is not None and value["signature"]
    edges = ledger.rows("lf_value_edge", parent_hash=root["value_hash"], order_by="position")
    assert [(e["position"], e["child_hash"]) for e in edges] == [
        ("0", hash_value(0)), ("1", hash_value(30)),
    ]  # fmt: skip

    # main's call has its four child calls, in order
    edges = ledger.rows("lf_call_edge", parent_hash=root["call_hash"], order_by="position")
    children = {r["call_hash"] for r in runs if r is not root}
    assert [e["position"] for e in edges] == [0, 1, 2, 3]
    assert {e["child_hash"] for e in edges} == children


def test_log_records_are_kept_with_the_task_run(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    ledgerflow.run(compute(4, 5), settings=ledger_settings)
    (row,) = ledger.rows("lf_task_run")
    (record,) = ledger.rows("lf_log_record")
    assert record["task_run_id"] == row["id"] and record["run_id"] == row["run_id"]
    assert record["level"] == "INFO" and record["message"] == "computing 4 x 5"
    assert record["logger"] == f"ledgerflow.task.{compute.fullname}"


def test_a_second_run_comes_from_the_cache(ledger_settings: Settings, ledger: LedgerRows) -> None:
    first = ledgerflow.execute(main(n=3), settings=ledger_settings)
    second = ledgerflow.execute(main(n=3), settings=ledger_settings)
    assert second.value == first.value == [0, 20, 40]
    assert {k: v for k, v in second.counts.items() if v} == {"cached": 1}
    (cached,) = ledger.rows("lf_task_run", run_id=second.run_id)
    assert cached["status"] == "cached" and cached["cached_from"] == first.run_id
    (original,) = ledger.rows("lf_task_run", run_id=first.run_id, parent_id=None)
    assert (cached["call_hash"], cached["value_hash"]) == (
        original["call_hash"], original["value_hash"],
    )  # fmt: skip
    # a wider fan-out reuses the calls already made
    third = ledgerflow.execute(main(n=4), settings=ledger_settings)
    assert third.value == [0, 20, 40, 60]
    assert third.counts["cached"] == 6 and third.counts["done"] == 3
    assert ledger.count("lf_cache_entry") == 1 + 6 + 1 + 2


def test_dry_run_shows_the_plan_and_writes_nothing(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    ledgerflow.run(generate(1), settings=ledger_settings)
    before = {t: ledger.count(t) for t in ("lf_run", "lf_task_run", "lf_value")}
    plan = ledgerflow.run(
        [compute(generate(1), 2), compute(generate(2), 2)], settings=ledger_settings, dry_run=True
    )
    assert [(p.task_name.rsplit(".", 1)[1], p.status) for p in plan] == [
        ("generate", "cached"), ("generate", "run"), ("compute", "run"), ("compute", "run"),
    ]  # fmt: skip
    assert plan[2].reason == "no cached result"
    assert plan[3].reason is not None and "needs" in plan[3].reason
    assert {t: ledger.count(t) for t in before} == before


def test_settings_are_found_from_a_config_path(ledger_settings: Settings) -> None:
    path = ledger_settings.path
    assert isinstance(path, Path)
    assert ledgerflow.run(generate(3), config=path) == 30
