"""Ctrl-C (SIGINT) on a real process ends the run ``interrupted`` on every executor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ledgerflow.config.settings import Settings
from ledgerflow.testing.pipelines import LedgerRows

CHILD = """
import sys, time
from ledgerflow import task, run
from ledgerflow.errors import RunInterruptedError

@task
def quick(i: int) -> int:
    return i

@task
def slow(x: int) -> int:
    time.sleep(600)
    return x

@task
def main() -> list[int]:
    return [quick(1), slow(quick(2))]

try:
    run(main(), config=sys.argv[1], executor=sys.argv[2], workers=2)
except RunInterruptedError:
    sys.exit(130)
"""


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_sigint_interrupts_the_run_and_keeps_finished_work(
    executor: str, ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path
) -> None:
    script = tmp_path / "interrupted_pipeline.py"
    script.write_text(textwrap.dedent(CHILD))
    env = {**os.environ, "LEDGERFLOW_HEARTBEAT_INTERVAL": "0.2"}
    child = subprocess.Popen(
        [sys.executable, str(script), str(ledger_settings.path), executor], env=env, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 60
        while not any(
            r["status"] == "running" and r["task_name"].endswith("slow")
            for r in ledger.rows("lf_task_run")
        ):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.1)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=30) == 130
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    (run,) = ledger.rows("lf_run")
    assert run["status"] == "interrupted" and run["executor"] == executor
    statuses = {(r["task_name"].rsplit(".", 1)[1], r["status"]) for r in ledger.rows("lf_task_run")}
    assert ("slow", "interrupted") in statuses and ("main", "interrupted") in statuses
    assert ("quick", "done") in statuses
    assert ledger.count("lf_cache_entry") == 2  # quick(1), quick(2)
