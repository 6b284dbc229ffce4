"""``ledgerflow run`` and ``ledgerflow explain`` on a migrated project (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledgerflow.cli.main import main
from ledgerflow.config import Settings
from ledgerflow.db import Database
from ledgerflow.testing.projects import make_project

PIPELINE = '''
from ledgerflow import task


@task
def square(x: int) -> int:
    return x * x


@task
def main(n: int = 3, offset: int = 0) -> list[int]:
    """Square the first n integers."""
    return [square(i + offset) for i in range(n)]


@task
def check(x: int) -> int:
    if x == 2:
        raise ValueError(f"bad input {x}")
    return x


@task
def fragile(n: int = 4) -> list[int]:
    return [square(check(i)) for i in range(n)]


@task
def stop(n: int = 2) -> int:
    raise KeyboardInterrupt
'''

SUMMARY = re.compile(r"^run ([0-9a-f]{8}) done in \d+\.\d\d s: (.+)$")
LEDGER_TABLES = ("lf_run", "lf_task_run", "lf_call", "lf_value", "lf_cache_entry", "lf_tag",
                 "lf_argument", "lf_task_def")


@pytest.fixture
def project(tmp_path: Path, migrated_database_entry: dict[str, Any], unique: str,
            isolated_imports: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A migrated project with a pipeline package ``<unique>/flow.py``; cwd is the project."""
    package = tmp_path / unique
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flow.py").write_text(PIPELINE)
    settings = make_project(tmp_path, migrated_database_entry)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEDGERFLOW_CONFIG", str(settings.path))
    yield settings


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def query(settings: Settings, sql: str, **params: Any) -> list[Any]:
    with Database(settings) as database, database.engine().connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def row_counts(settings: Settings) -> dict[str, int]:
    return {table: query(settings, f"SELECT count(*) FROM {table}")[0][0] for table in LEDGER_TABLES}


def summary(out: str) -> tuple[str, str]:
    match = SUMMARY.match(out.strip().splitlines()[-1])
    assert match, out
    return match.group(1), match.group(2)


def test_run_by_module_records_and_second_run_is_cached(project: Settings, unique: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["run", f"{unique}.flow:main", "--n", "3"], capsys)
    assert code == 0, err
    assert err == ""  # no progress display without a terminal
    assert out.splitlines()[0] == "result: [0, 1, 4]"
    run_id, counts = summary(out)
    assert counts == "4 done, 0 cached"
    runs = query(project, "SELECT id, status, command_line FROM lf_run")
    assert len(runs) == 1 and runs[0].id.startswith(run_id) and runs[0].status == "done"
    assert runs[0].command_line == f"ledgerflow run {unique}.flow:main --n 3"
    assert query(project, "SELECT count(*) FROM lf_task_run WHERE status = 'done'")[0][0] == 4

    code, out, _ = cli(["run", f"{unique}.flow:main", "--n", "3"], capsys)
    assert code == 0
    second, counts = summary(out)
    assert second != run_id and counts.startswith("0 done, ") and "0 cached" not in counts


def test_run_by_file_path(project: Settings, unique: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["run", f"{unique}/flow.py:main", "--n", "2", "--offset", "3"], capsys)
    assert code == 0, err
    assert "result: [9, 16]" in out
    assert summary(out)[1] == "3 done, 0 cached"


def test_json_summary(project: Settings, unique: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["run", f"{unique}.flow:main", "--n", "2", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert set(data) == {
        "run_id", "status", "counts", "retried_attempts", "duration", "result", "failures", "notes"
    }
    assert data["status"] == "done" and data["result"] == "[0, 1]" and data["failures"] == []
    assert data["notes"] == []
    assert data["counts"]["done"] == 3 and data["counts"]["failed"] == 0
    assert query(project, "SELECT id FROM lf_run")[0][0] == data["run_id"]


def test_failure_block_and_exit_code(project: Settings, unique: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["run", f"{unique}.flow:fragile", "--n", "4"], capsys)
    assert code == 1
    assert "result:" not in out
    assert f"✗ {unique}.flow.check(x=2) failed" in err
    assert "  ValueError: bad input 2" in err
    assert "traceback (last lines):" in err and 'raise ValueError(f"bad input {x}")' in err
    last = err.strip().splitlines()[-1]
    match = re.match(r"Error: run ([0-9a-f]{8}) failed in \d+\.\d\d s: (.+) \(ledgerflow show \1\)$", last)
    assert match, err
    assert match.group(2) == "6 done, 0 cached, 1 failed, 2 skipped"
    failed = query(project, "SELECT task_name, exception_type, exception_message FROM lf_task_run "
                            "WHERE status = 'failed'")
    assert [tuple(r) for r in failed] == [(f"{unique}.flow.check", "ValueError", "bad input 2")]


def test_failure_as_json(project: Settings, unique: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["run", f"{unique}.flow:fragile", "--json"], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "failed" and data["result"] is None
    [failure] = data["failures"]
    assert failure["task"].endswith(".flow.check") and failure["arguments"] == "x=2"
    assert failure["exception_type"] == "ValueError" and "bad input 2" in failure["traceback"]


def test_interrupted_run_exits_130(project: Settings, unique: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["run", f"{unique}.flow:stop"], capsys)
    assert code == 130
    assert re.fullmatch(r"Error: run [0-9a-f]{8} interrupted \(finished tasks are recorded and "
                        r"cached\)\n", err), err
    assert query(project, "SELECT status FROM lf_run")[0][0] == "interrupted"


def test_dry_run_writes_nothing(project: Settings, unique: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["run", f"{unique}.flow:square", "--x", "3"], capsys)[0] == 0
    before = row_counts(project)
    code, out, _ = cli(["run", "--dry-run", f"{unique}.flow:square", "--x", "3"], capsys)
    assert code == 0
    assert f"cached  {unique}.flow.square(x=3)" in out
    assert out.strip().endswith("dry run: 0 would run, 1 cached; nothing was written")
    code, out, _ = cli(["run", f"{unique}.flow:square", "--x", "4", "--dry-run", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["plan"] == [{"task": f"{unique}.flow.square", "arguments": "x=4", "status": "run",
                             "reason": data["plan"][0]["reason"]}]
    assert row_counts(project) == before


def test_tags_are_recorded_and_validated(project: Settings, unique: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["run", f"{unique}.flow:main", "--tag", "sample=S4", "--tag",
                        "batch=2024-01", "--json"], capsys)
    assert code == 0
    run_id = json.loads(out)["run_id"]
    tags = query(project, "SELECT key, value, entity_kind FROM lf_tag WHERE entity_id = :id",
                 id=run_id)
    assert sorted(tuple(t) for t in tags) == [("batch", "2024-01", "run"), ("sample", "S4", "run")]
    for bad in ("novalue", "=x", "a b=c"):
        code, out, err = cli(["run", f"{unique}.flow:main", "--tag", bad], capsys)
        assert code == 2 and out == ""
        assert err.startswith(f"Error: --tag '{bad}' is not key=value") and err.count("\n") == 1
    assert len(query(project, "SELECT id FROM lf_run")) == 1


def test_rerun_and_no_cache(project: Settings, unique: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["run", f"{unique}.flow:main"], capsys)[0] == 0
    code, out, _ = cli(["run", f"{unique}.flow:main", "--rerun", "main", "--json"], capsys)
    assert code == 0
    counts = json.loads(out)["counts"]
    assert counts["done"] == 1 and counts["cached"] == 3  # main runs again, squares cached
    code, out, _ = cli(["run", f"{unique}.flow:main", "--rerun", "main", "--rerun", "square",
                        "--json"], capsys)
    assert json.loads(out)["counts"]["done"] == 4
    code, out, _ = cli(["run", "--no-cache", f"{unique}.flow:main", "--json"], capsys)
    assert code == 0 and json.loads(out)["counts"] == {**json.loads(out)["counts"], "done": 4,
                                                       "cached": 0}


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_executor_and_workers(project: Settings, unique: str, executor: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["run", f"{unique}.flow:main", "--n", "4", "--executor", executor,
                          "--workers", "2"], capsys)
    assert code == 0, err
    assert "result: [0, 1, 4, 9]" in out
    assert query(project, "SELECT executor FROM lf_run")[0][0] == executor


def test_explain(project: Settings, unique: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["explain", f"{unique}.flow:main", "--n", "2"], capsys)
    assert code == 0
    assert out.splitlines()[0] == f"{unique}.flow.main: would run"
    assert cli(["run", f"{unique}.flow:main", "--n", "2", "--quiet"], capsys)[1] == ""
    code, out, _ = cli(["explain", f"{unique}.flow:main", "--n", "2"], capsys)
    assert out.splitlines()[0] == f"{unique}.flow.main: cached"
    code, out, _ = cli(["explain", f"{unique}.flow:main", "--n", "5", "--json"], capsys)
    data = json.loads(out)
    assert data["status"] == "run" and data["task"] == f"{unique}.flow.main"
    assert any("'n'" in reason and "2 -> 5" in reason for reason in data["reasons"])
