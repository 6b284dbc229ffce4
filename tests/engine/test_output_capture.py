"""What a task prints (stdout, stderr) or logs (standard ``logging``) is kept with its task run."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import ledgerflow
from ledgerflow import context, task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.testing.pipelines import LedgerRows

log = logging.getLogger("tests.output")
BARRIER = threading.Barrier(2, timeout=20)


@task
def noisy(n: int) -> int:
    print("printed", n)
    print("in", end="")
    print(" parts")
    sys.stderr.write(f"to stderr {n}\n")
    log.warning("logged %d", n)
    log.debug("below the logger's level")
    context.logger.info("through context %d", n)
    return n


@task
def both(count: int) -> list[int]:
    return [noisy(i) for i in range(count)]


@task
def chatty(label: str) -> str:
    BARRIER.wait()  # both tasks are running now: their lines interleave
    for i in range(200):
        print(label, i)
        log.warning("%s logged %d", label, i)
        if i % 20 == 0:
            BARRIER.wait()
    return label


@task
def flood(lines: int) -> int:
    for i in range(lines):
        print(f"line {i:06d} " + "x" * 40)
    return lines


def logs_by_task_run(ledger: LedgerRows, run_id: str) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for row in ledger.rows("lf_log_record", order_by="id", run_id=run_id):
        found.setdefault(row["task_run_id"], []).append((row["level"], row["message"]))
    return found


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_prints_and_logging_are_kept_with_each_task_run(
    ledger_settings: Settings, ledger: LedgerRows, executor: str
) -> None:
    result = ledgerflow.execute(both(2), settings=ledger_settings, executor=executor, workers=2)
    assert result.status == "done", result.failures
    kept = logs_by_task_run(ledger, result.run_id)
    by_n: dict[int, list[tuple[str, str]]] = {}
    for lines in kept.values():
        n = int(lines[0][1].split()[-1])
        by_n[n] = lines
    for n in (0, 1):
        assert sorted(by_n[n]) == sorted([
            ("STDOUT", f"printed {n}"),
            ("STDOUT", "in parts"),
            ("STDERR", f"to stderr {n}"),
            ("WARNING", f"logged {n}"),
            ("INFO", f"through context {n}"),  # kept once, though it also goes to logging
        ])  # fmt: skip
    assert len(kept) == 2  # the entry task printed nothing
    loggers = {r["message"]: r["logger"] for r in ledger.rows("lf_log_record")}
    assert loggers["logged 0"] == "tests.output"


def test_concurrent_tasks_of_the_threads_executor_keep_their_own_lines(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    result = ledgerflow.execute(
        [chatty("left"), chatty("right")], settings=ledger_settings, executor="threads", workers=2
    )
    assert result.status == "done", result.failures
    kept = logs_by_task_run(ledger, result.run_id)
    assert len(kept) == 2
    for lines in kept.values():
        label = lines[0][1].split()[0]
        assert [m for level, m in lines if level == "STDOUT"] == [
            f"{label} {i}" for i in range(200)
        ]
        assert [m for level, m in lines if level == "WARNING"] == [
            f"{label} logged {i}" for i in range(200)
        ]


def test_the_log_of_a_task_run_is_bounded_and_says_what_it_dropped(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    path = ledger_settings.path
    assert path is not None
    path.write_text(path.read_text() + "logs: {max_bytes: 2000}\n")
    settings = load_settings(path)
    result = ledgerflow.execute(flood(1000), settings=settings)  # ~52 kB printed
    assert result.status == "done"
    rows = ledger.rows("lf_log_record", order_by="id", run_id=result.run_id)
    kept = [r["message"] for r in rows if r["level"] == "STDOUT"]
    assert kept[0] == "line 000000 " + "x" * 40
    assert 30 <= len(kept) <= 40 and sum(len(m) for m in kept) <= 2000
    marker = rows[-1]
    assert marker["level"] == "WARNING" and marker["logger"] == "ledgerflow"
    dropped_lines = 1000 - len(kept)
    dropped_bytes = 52 * 1000 - sum(len(m) for m in kept)  # every line is 52 characters
    assert f"{dropped_lines:,} line(s), {dropped_bytes:,} bytes" in marker["message"]
    assert "limit of 2,000 bytes" in marker["message"]


def test_printed_lines_are_echoed_unless_turned_off(
    ledger_settings: Settings, ledger: LedgerRows, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (sys.stdout, sys.stderr, list(logging.getLogger().handlers))
    ledgerflow.run(noisy(7), settings=ledger_settings)
    captured = capsys.readouterr()
    assert "printed 7\nin parts\n" in captured.out and "to stderr 7\n" in captured.err
    assert (sys.stdout, sys.stderr, list(logging.getLogger().handlers)) == before

    path = ledger_settings.path
    assert path is not None
    path.write_text(path.read_text() + "logs: {echo: false}\n")
    result = ledgerflow.execute(noisy(8), settings=load_settings(path))
    captured = capsys.readouterr()
    assert "printed 8" not in captured.out and "to stderr 8" not in captured.err
    messages = [r["message"] for r in ledger.rows("lf_log_record", run_id=result.run_id)]
    assert "printed 8" in messages and "to stderr 8" in messages


def test_output_outside_tasks_is_left_alone(ledger_settings: Settings) -> None:
    from ledgerflow.engine.executor import WorkerEnv
    from ledgerflow.engine.output import TaskStream
    from ledgerflow.engine.worker import WorkerState

    state = WorkerState(WorkerEnv(ledger_settings, "run", {}))
    try:
        assert isinstance(sys.stdout, TaskStream)
        print("between tasks")  # no task runs: straight through, nothing kept
    finally:
        state.close()
    assert not isinstance(sys.stdout, TaskStream)


PIPELINE = """\
import logging
from ledgerflow import task

log = logging.getLogger("pipeline")


@task
def report(n: int) -> int:
    print(f"counted {n} rows")
    log.warning("%d rows look odd", n)
    return n
"""


def test_show_prints_the_kept_lines_and_the_terminal_still_sees_them(
    tmp_path: Path, database_entry: dict[str, Any]
) -> None:
    from ledgerflow import migrations
    from ledgerflow.testing.projects import make_project

    settings = make_project(tmp_path / "project", database_entry)
    migrations.upgrade(settings)
    (tmp_path / "project" / "pipeline_out.py").write_text(textwrap.dedent(PIPELINE))
    exe = [sys.executable, "-m", "ledgerflow", "--config", str(settings.path)]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "project")}
    run = subprocess.run(
        [*exe, "run", "pipeline_out:report", "--n", "3"],
        capture_output=True, text=True, env=env, cwd=tmp_path / "project", timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "counted 3 rows" in run.stdout  # echoed as before
    assert "3 rows look odd" in run.stderr  # logging with no handler still reaches stderr
    ledger = LedgerRows(settings)
    try:
        (row,) = ledger.rows("lf_task_run")
    finally:
        ledger.close()
    show = subprocess.run(
        [*exe, "show", row["id"]], capture_output=True, text=True, env=env, timeout=120
    )
    assert show.returncode == 0, show.stderr
    lines = show.stdout.splitlines()
    logs = lines[lines.index("logs:") + 1 :]
    assert [line.split(None, 1)[1] for line in logs] == [
        "STDOUT  counted 3 rows",
        "WARNING 3 rows look odd",
    ]


def test_a_redrawn_progress_line_keeps_its_last_state_and_stays_small() -> None:
    from ledgerflow.engine.output import TaskOutput

    entries: list = []
    output = TaskOutput(entries, max_bytes=10_000)
    for i in range(100_000):  # like a progress bar: "\r" and no line end, 1 MB in all
        output.write("stderr", f"\r{i:>6}/100000")
    output.write("stderr", "\n")
    output.write("stdout", "abc\r")
    output.finish()
    assert [(e[1], e[3]) for e in entries] == [("STDERR", " 99999/100000"), ("STDOUT", "abc")]


def test_a_long_line_written_in_pieces_is_cut_at_the_limit() -> None:
    from ledgerflow.engine.output import TaskOutput

    entries: list = []
    output = TaskOutput(entries, max_bytes=1000)
    for _ in range(100_000):
        output.write("stdout", "xy")
    output.write("stdout", "\nlast\n")
    output.finish()
    kept, marker = entries
    assert kept[3] == "xy" * 500
    assert marker[3].startswith("output over this task run's limit of 1,000 bytes")
    # the rest of the long line and "last": 199,000 - 1,000 + 4 characters
    assert "2 line(s), 199,004 bytes" in marker[3]
