"""Ctrl-C, SIGTERM and SIGHUP on a real process end the run ``interrupted`` on every executor."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import pytest

from ledgerflow.testing.pipelines import LedgerRows

CHILD = """
import sys
from ledgerflow import run
from ledgerflow.errors import RunInterruptedError
from pipeline_file import main

try:
    run(main(), config=sys.argv[1], executor=sys.argv[2], workers=2)
except RunInterruptedError as exc:
    print(exc.message, file=sys.stderr)
    sys.exit(exc.exit_code)
"""

CASES = [
    ("local", signal.SIGINT), ("threads", signal.SIGINT), ("processes", signal.SIGINT),
    ("local", signal.SIGTERM), ("threads", signal.SIGHUP), ("processes", signal.SIGTERM),
]  # fmt: skip


def _assert_interrupted(ledger: LedgerRows, executor: str) -> None:
    (run,) = ledger.rows("lf_run")
    assert run["status"] == "interrupted" and run["executor"] == executor
    statuses = {(r["task_name"].rsplit(".", 1)[1], r["status"]) for r in ledger.rows("lf_task_run")}
    assert ("slow", "interrupted") in statuses and ("main", "interrupted") in statuses
    assert ("quick", "done") in statuses
    assert ledger.count("lf_cache_entry") == 2  # quick(1), quick(2)


@pytest.mark.parametrize(("executor", "signum"), CASES, ids=[f"{e}-{s.name}" for e, s in CASES])
def test_a_signal_interrupts_the_run_and_keeps_finished_work(
    executor: str, signum: signal.Signals, children: Any, ledger: LedgerRows
) -> None:
    script = children.write("interrupted_pipeline.py", CHILD)
    child = children.python(script, str(children.settings.path), executor)
    children.wait_until(children.slow_task_running, child)
    child.send_signal(signum)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 128 + signum, err
    assert f"interrupted by {signum.name}" in err
    _assert_interrupted(ledger, executor)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_ledgerflow_run_exits_128_plus_the_signal_with_one_line(
    signum: signal.Signals, children: Any, ledger: LedgerRows
) -> None:
    child = children.cli("run", "pipeline_file.py:main", "-q")
    children.wait_until(children.slow_task_running, child)
    child.send_signal(signum)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 128 + signum
    run_id = ledger.rows("lf_run")[0]["id"]
    assert err.strip().splitlines() == [
        f"Error: run {run_id[:8]} interrupted by {signum.name} "
        "(finished tasks are recorded and cached)"
    ]
    _assert_interrupted(ledger, "local")


def test_an_ignored_sighup_stays_ignored(children: Any, ledger: LedgerRows) -> None:
    """Under ``nohup`` (SIGHUP ignored) a hang-up does not stop the run."""
    children.write(
        "hangup.py",
        """
        import os, signal, time
        from ledgerflow import task

        @task
        def main() -> int:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.3)
            return 1
        """,
    )
    code = (
        "import signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "from ledgerflow.cli.main import main; main(sys.argv[1:])\n"
    )
    config = str(children.settings.path)
    proc = subprocess.run(
        [sys.executable, "-c", code, "--config", config, "run", "hangup.py:main", "-q"],
        env=children.env, cwd=children.root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in ledger.rows("lf_run")] == ["done"]


#: ``ledgerflow run`` in a child that pauses at one moment, named by argv[1], until the
#: test has sent its signal (bounded: 30 s at most): once the run's end is recorded (the
#: recorder closed, the run's signal handlers not yet restored), or once the run returned
#: to the command line (its handlers restored, the summary not yet printed).
PAUSING_CLI = """
import os, sys, time
from pathlib import Path

def pause():
    Path(os.environ["PAUSED"]).write_text("paused")
    deadline = time.monotonic() + 30
    while not Path(os.environ["GO"]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)

def after(original):
    def wrapper(*args, **kwargs):
        value = original(*args, **kwargs)
        pause()
        return value
    return wrapper

if sys.argv[1] == "end-recorded":
    from ledgerflow.ledger.recorder import Recorder
    Recorder.close = after(Recorder.close)
else:
    import ledgerflow.api as api
    api.attempt_counts = after(api.attempt_counts)

from ledgerflow.cli.main import main
main(sys.argv[2:])
"""

QUICK_PIPELINE = """
from ledgerflow import task

@task
def main() -> int:
    return 1
"""


@pytest.mark.parametrize("moment", ["end-recorded", "back-in-the-cli"])
def test_a_stop_signal_after_the_run_ended_exits_143_with_one_line(
    moment: str, children: Any, ledger: LedgerRows
) -> None:
    children.write("quick_pipeline.py", QUICK_PIPELINE)
    script = children.write("pausing_cli.py", PAUSING_CLI)
    paused, go = children.root / "paused", children.root / "go"
    children.env.update(PAUSED=str(paused), GO=str(go))
    config = str(children.settings.path)
    child = children.python(script, moment, "--config", config, "run", "quick_pipeline.py:main", "-q")
    children.wait_until(paused.exists, child)
    (run,) = ledger.rows("lf_run")
    assert run["status"] == "done"  # recorded before the signal
    child.send_signal(signal.SIGTERM)
    go.write_text("go")
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    short = run["id"][:8]
    assert err.strip().splitlines() == [
        f"Error: run {short} had ended when SIGTERM arrived "
        f"(its record is complete: ledgerflow show {short})"
    ]
    assert [r["status"] for r in ledger.rows("lf_run")] == ["done"]


def test_a_stop_signal_before_the_run_is_recorded_exits_143_with_one_line(
    children: Any, ledger: LedgerRows
) -> None:
    """While the task's module loads (its own code sleeps there), nothing is recorded yet."""
    loading = children.root / "loading"
    children.env["LOADING"] = str(loading)
    children.write(
        "slow_import.py",
        """
        import os, time
        from pathlib import Path
        from ledgerflow import task

        Path(os.environ["LOADING"]).write_text("loading")
        time.sleep(30)

        @task
        def main() -> int:
            return 1
        """,
    )
    child = children.cli("run", "slow_import.py:main", "-q")
    children.wait_until(loading.exists, child)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.strip().splitlines() == ["Error: ledgerflow interrupted by SIGTERM"]
    assert ledger.rows("lf_run") == []
