"""Runs stop cleanly: workers die with their parent, and a Ctrl-C at any moment (even while
the ledger is written) leaves a complete record."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.testing.pipelines import LedgerRows

WORKERS_CHILD = """
import sys
import ledgerflow.executors.processes as processes
from ledgerflow import run
from pipeline_file import main

processes.USE_PDEATHSIG = sys.argv[2] == "pdeathsig"
run(main(), config=sys.argv[1], executor="processes", workers=2)
"""


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("guard", ["pdeathsig", "watch-thread"])
def test_workers_die_when_their_parent_is_killed(guard: str, children: Any) -> None:
    script = children.write("workers_pipeline.py", WORKERS_CHILD)
    child = children.python(script, str(children.settings.path), guard)
    children.wait_until(children.slow_task_running, child)
    workers = _children_of(child.pid)
    assert len(workers) == 2
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # do not leave them behind when the check fails
        os.kill(pid, signal.SIGKILL)
    assert left == []


MANY_PIPELINE = """
import os
from ledgerflow import task

MARKS = open(os.environ["MARKS"], "a", buffering=1)

@task
def tiny(i: int) -> int:
    MARKS.write(f"{i}\\n")
    return i

@task
def main(n: int = 5000) -> list[int]:
    return [tiny(i) for i in range(n)]
"""

KILLS = 3


def test_ctrl_c_at_any_moment_leaves_a_complete_record(
    children: Any, ledger: LedgerRows, database_dialect: str
) -> None:
    """Seeded Ctrl-Cs at random moments of runs of 5,000 immediate tasks: each run ends
    ``interrupted`` (exit 130, one line, no traceback) and every task that returned is
    recorded ``done`` and cached."""
    children.write("many.py", MANY_PIPELINE)
    rng = random.Random(20261201 + len(database_dialect))
    seen: set[str] = set()
    interrupted = 0
    for attempt in range(KILLS):
        marks = children.root / f"marks-{attempt}.txt"
        children.env["MARKS"] = str(marks)
        child = children.cli("run", "many.py:main", "--no-cache", "-q")
        after = rng.randrange(0, 4500)  # tasks returned before the signal (about)
        children.wait_until(lambda: _count_lines(marks) >= after, child)  # noqa: B023
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        (run,) = _new_runs(ledger, seen)
        seen.add(run["id"])
        assert "Traceback" not in err, err
        returned = _count_lines(marks)
        rows = ledger.rows("lf_task_run", run_id=run["id"])
        done = [r for r in rows if r["status"] == "done" and r["task_name"].endswith("tiny")]
        if run["status"] == "done":  # the signal came once the run was recorded: the
            # process ends as any other does on SIGINT (on its way out: killed by it)
            assert len(done) == 5000 and child.returncode in (0, 130, -signal.SIGINT), err
            continue
        assert child.returncode == 130 and len(err.strip().splitlines()) == 1, err
        assert run["status"] == "interrupted", (run["status"], err)
        interrupted += 1
        # the task interrupted while it ran may have written its mark
        assert len(done) >= returned - 1, (len(done), returned)
        assert {r["status"] for r in rows} <= {"done", "interrupted"}
        # cached: by this run, or (PostgreSQL's user role only adds cache entries) an earlier one
        cached = {(r["task_hash"], r["args_hash"]) for r in ledger.rows("lf_cache_entry")}
        assert {(r["task_hash"], r["args_hash"]) for r in done} <= cached
    assert interrupted == KILLS  # the signals land while the runs work


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _new_runs(ledger: LedgerRows, seen: set[str]) -> list[dict[str, Any]]:
    return [r for r in ledger.rows("lf_run") if r["id"] not in seen]
