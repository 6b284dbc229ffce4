"""A run whose process died is found ``interrupted`` by the next command (heartbeat)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ledgerflow
from ledgerflow import task
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.ledger.heartbeat import Heartbeat, reap_stale_runs
from ledgerflow.ledger.schema import Run, TaskRun
from ledgerflow.testing.pipelines import LedgerRows

CHILD = """
import sys, time
from ledgerflow import task, run

@task
def quick(i: int) -> int:
    time.sleep(0.5)  # lets a flush happen before slow() starts
    return i

@task
def slow(x: int) -> int:
    time.sleep(600)
    return x

@task
def main() -> list[int]:
    return [slow(quick(1)), quick(2)]

run(main(), config=sys.argv[1])
"""


@task
def one() -> int:
    return 1


def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_killed_run_is_marked_interrupted_by_the_next_run(
    ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path
) -> None:
    script = tmp_path / "child_pipeline.py"
    script.write_text(textwrap.dedent(CHILD))
    env = {**os.environ, "LEDGERFLOW_HEARTBEAT_INTERVAL": "0.2"}
    child = subprocess.Popen(
        [sys.executable, str(script), str(ledger_settings.path)], env=env, cwd=tmp_path
    )
    try:
        _wait_for(
            lambda: any(
                r["status"] == "running" and r["task_name"].endswith("slow")
                for r in ledger.rows("lf_task_run")
            )
        )
        (run,) = ledger.rows("lf_run")
        assert run["status"] == "running" and run["pid"] == child.pid
        first_beat = run["heartbeat_at"]
        _wait_for(lambda: ledger.rows("lf_run")[0]["heartbeat_at"] > first_beat)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert ledger.rows("lf_run")[0]["status"] == "running"  # nobody told the ledger yet

    assert ledgerflow.run(one(), settings=ledger_settings) == 1  # the next command opens the ledger
    dead = next(r for r in ledger.rows("lf_run") if r["id"] == run["id"])
    assert dead["status"] == "interrupted" and dead["ended_at"] is not None
    rows = ledger.rows("lf_task_run", run_id=run["id"])
    assert {r["status"] for r in rows} <= {"done", "interrupted"}
    assert any(r["status"] == "interrupted" and r["task_name"].endswith("slow") for r in rows)
    assert any(r["status"] == "done" and r["task_name"].endswith("quick") for r in rows)


def _insert_run(database: Database, run_id: str, beat: datetime, host: str) -> None:
    with database.transaction() as session:
        session.add(
            Run(id=run_id, status="running", entry_task="x", started_at=beat, heartbeat_at=beat,
                host=host, pid=1)
        )
        session.flush()
        session.add(
            TaskRun(id=run_id[:30] + "tr", run_id=run_id, task_hash=_task_def(session),
                    task_name="x", args_hash="", status="running")
        )


def _task_def(session) -> str:  # type: ignore[no-untyped-def]
    from ledgerflow.ledger.schema import TaskDef

    if session.get(TaskDef, "t" * 40) is None:
        now = datetime.now(UTC)
        session.add(TaskDef(hash="t" * 40, name="x", namespace="", created_at=now))
        session.flush()
    return "t" * 40


def test_only_runs_with_an_old_heartbeat_are_reaped(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    database = Database(ledger_settings)
    try:
        now = datetime.now(UTC)
        _insert_run(database, "a" * 32, now - timedelta(seconds=300), "elsewhere")
        _insert_run(database, "b" * 32, now - timedelta(seconds=5), "elsewhere")
        assert reap_stale_runs(database.engine(), stale_after=60) == ["a" * 32]
        statuses = {r["id"][0]: r["status"] for r in ledger.rows("lf_run")}
        assert statuses == {"a": "interrupted", "b": "running"}
        assert ledger.rows("lf_task_run", run_id="a" * 32)[0]["status"] == "interrupted"
        assert ledger.rows("lf_task_run", run_id="b" * 32)[0]["status"] == "running"

        beat = Heartbeat(database.engine(), "b" * 32, interval=0.05)
        beat.start()
        time.sleep(0.3)
        beat.stop()
        fresh = ledger.rows("lf_run", id="b" * 32)[0]["heartbeat_at"]
        assert fresh.replace(tzinfo=None) > (now - timedelta(seconds=1)).replace(tzinfo=None)
    finally:
        database.dispose()
