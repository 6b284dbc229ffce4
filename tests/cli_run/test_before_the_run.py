"""Mistakes a new user makes with ``ledgerflow run``: each is one clear error before the run
starts (no run row), or a summary that adds up with ``ledgerflow log``."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledgerflow import api, migrations
from ledgerflow.cli.main import main
from ledgerflow.config import Settings
from ledgerflow.db import Database
from ledgerflow.errors import UsageError
from ledgerflow.testing.projects import make_project
from ledgerflow.values import File

PIPELINE = '''
import os

from ledgerflow import File, task


@task
def summarize(x: int) -> int:
    return x + 1


@task
def main(n: int = 2) -> list[int]:
    return [summarize(i) for i in range(n)]


@task
def count(readings: File) -> int:
    return len(readings.read())


@task
def count_all(readings: list[File]) -> int:
    return sum(len(r.read()) for r in readings)


@task(retries=2)
def flaky(x: int) -> int:
    marker = f".attempts-{x}"
    seen = int(open(marker).read()) if os.path.exists(marker) else 0
    with open(marker, "w") as fh:
        fh.write(str(seen + 1))
    if seen == 0:
        raise RuntimeError("first attempt fails")
    return x


@task
def retried(n: int = 2) -> list[int]:
    return [flaky(i) for i in range(n)]


class Box:
    """Not plain data: stored pickled, so signed with the project's key."""

    def __init__(self, n: int) -> None:
        self.n = n


@task
def boxed(n: int = 2) -> Box:
    return Box(n)
'''


@pytest.fixture
def project(tmp_path: Path, database_entry: dict[str, Any], unique: str,
            isolated_imports: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    package = tmp_path / unique
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flow.py").write_text(PIPELINE)
    settings = make_project(tmp_path, database_entry)
    migrations.upgrade(settings)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDGERFLOW_SIGNING_KEY", raising=False)
    monkeypatch.setenv("LEDGERFLOW_CONFIG", str(settings.path))
    yield settings


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def run_count(settings: Settings) -> int:
    with Database(settings) as database, database.engine().connect() as connection:
        return int(connection.execute(sa.text("SELECT COUNT(*) FROM lf_run")).scalar_one())


def test_an_unknown_rerun_name_is_a_usage_error_listing_the_tasks(
    project: Settings, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"{unique}.flow:main"
    assert cli(["run", target], capsys)[0] == 0
    code, out, err = cli(["run", target, "--rerun", "summarise"], capsys)
    assert code == 2, out + err
    [line] = err.strip().splitlines()
    assert "'summarise'" in line and "known task names:" in line
    assert "summarize" in line and "main" in line
    assert run_count(project) == 1

    code, out, err = cli(["run", target, "--rerun", "summarize", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["counts"]["done"] == 3  # main and both summarize calls ran again
    qualified = cli(["run", target, "--rerun", f"{unique}.flow.summarize", "-q"], capsys)
    assert qualified[0] == 0, qualified[2]


def test_a_task_only_the_ledger_knows_is_a_valid_rerun_name(project: Settings, unique: str) -> None:
    """A task reached only at run time (not through the entry's code) was recorded: accepted."""
    call = api.call_target(f"{unique}.flow:main", {"n": 1})
    api.run(call, settings=project)
    other = api.call_target(f"{unique}.flow:retried", {"n": 0})
    assert api.execute(other, settings=project, rerun=["summarize"]).status == "done"
    with pytest.raises(UsageError, match="known task names: .*retried"):
        api.execute(other, settings=project, rerun=["sumarize"])


def test_a_missing_input_file_is_a_usage_error_and_records_nothing(
    project: Settings, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(["run", f"{unique}.flow:count", "--readings", "nope.csv"], capsys)
    assert code == 2, out + err
    [line] = err.strip().splitlines()
    assert "nope.csv" in line and "--readings" in line and "Traceback" not in err
    many = cli(["run", f"{unique}.flow:count_all", "--readings", "nope.csv"], capsys)
    assert many[0] == 2 and "nope.csv" in many[2]
    assert run_count(project) == 0

    Path("data.csv").write_text("a,b\n")
    assert cli(["run", f"{unique}.flow:count", "--readings", "data.csv", "-q"], capsys)[0] == 0
    assert run_count(project) == 1


def test_the_library_checks_input_files_before_recording(project: Settings, unique: str) -> None:
    count = api.call_target(f"{unique}.flow:count_all", {"readings": [File("gone.csv")]})
    with pytest.raises(UsageError, match=r"input file gone\.csv .* does not exist: argument "
                                         r"'readings' of task count_all"):
        api.execute(count, settings=project)
    assert run_count(project) == 0


def test_the_package_root_run_checks_like_the_cli(project: Settings, unique: str) -> None:
    """``ledgerflow.run``/``execute`` (what a notebook calls) check before recording too."""
    import ledgerflow

    count = api.call_target(f"{unique}.flow:count_all", {"readings": [File("gone.csv")]})
    with pytest.raises(UsageError, match=r"input file gone\.csv"):
        ledgerflow.run(count, settings=project)
    main_call = api.call_target(f"{unique}.flow:main", {"n": 1})
    with pytest.raises(UsageError, match="unknown task name 'sumarize'"):
        ledgerflow.execute(main_call, settings=project, rerun=["sumarize"])
    with pytest.raises(UsageError, match="unknown task name 'sumarize'"):
        ledgerflow.execute(main_call, settings=project, rerun=["sumarize"], dry_run=True)
    assert run_count(project) == 0


def test_a_retried_run_counts_its_failed_attempts_like_log(
    project: Settings, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(["run", f"{unique}.flow:retried"], capsys)
    assert code == 0, err
    summary = out.strip().splitlines()[-1]
    assert summary.endswith(": 3 done, 0 cached (2 failed attempts retried)"), summary
    run_id = summary.split()[1]
    logged = cli(["log", run_id], capsys)[1].splitlines()[0]
    assert "3 done, 2 failed" in logged  # every attempt: the same five task runs

    Path(".attempts-0").unlink()
    Path(".attempts-1").unlink()
    code, out, _ = cli(["run", f"{unique}.flow:retried", "--rerun", "flaky", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["retried_attempts"] == 2


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Files made immutable (``chattr +i``: even root cannot write them), restored afterwards."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    paths: list[Path] = []
    yield paths
    for path in paths:
        subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.mark.parametrize("database_dialect", ["sqlite"])  # a read-only file is a SQLite case
def test_run_on_a_read_only_ledger_is_one_line(
    project: Settings, unique: str, capsys: pytest.CaptureFixture[str], immutable: list[Path]
) -> None:
    ledger = project.default.path
    assert ledger is not None
    made = subprocess.run(["chattr", "+i", str(ledger)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make the ledger immutable here: {made.stderr.strip()}")
    immutable.append(ledger)
    code, out, err = cli(["run", f"{unique}.flow:main"], capsys)
    assert code == 4, out + err
    [line] = err.strip().splitlines()
    assert "refused a write" in line and "readonly" in line and str(ledger) in line
    assert "Traceback" not in err


def test_run_as_a_role_that_may_not_write_is_one_line(
    project: Settings, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if project.default.dialect != "postgresql" or project.default.user is None:
        pytest.skip("roles are a PostgreSQL case")
    user = project.default.user.username
    with Database(project, role="admin") as admin, admin.engine().begin() as connection:
        connection.execute(sa.text(f'REVOKE INSERT ON lf_run, lf_configuration FROM "{user}"'))
    code, out, err = cli(["run", f"{unique}.flow:main"], capsys)
    assert code == 4, out + err
    [line] = err.strip().splitlines()
    assert "refused a write" in line and "permission denied" in line
    assert "Traceback" not in err
