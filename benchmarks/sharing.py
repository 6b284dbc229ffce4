"""Sharing benchmark: each call computed once when many runs want it at the same time.

Two measurements, on SQLite (one file, processes of this host) and PostgreSQL:

* **concurrent runs**: one run of a pipeline of ``--calls`` independent calls (each sleeps
  ``--sleep`` seconds and appends a line to a marks file) on a fresh ledger, timed alone;
  then ``--runs`` runs of the same pipeline started together on another fresh ledger.
  Printed: the executions counted in the marks file (target: exactly ``--calls``) and the
  wall time of all the runs against the one run alone (target: at most 1.3x): from the
  first run's start to the last run's end as the ledger records them (the processes start
  their runs together: each waits at a barrier once it imported the pipeline), so that the
  start-up of eight Python processes on a small machine is not what is measured; the times
  from their launch, start-up included, are printed too. With
  ``--baseline`` the concurrent runs are measured once more with ``cache.claim: false``
  (no claims), to show what claiming saves.
* **claiming overhead**: the engine benchmark's fan-out first run (``benchmarks/engine.py``,
  N = ``--overhead-n`` trivial calls, local executor) with claims on and with
  ``cache.claim: false``, ``--repeat`` interleaved pairs, median of the pair ratios (target:
  at most 15% slower with claims); the CPU-time ratio is printed too.

    .venv/bin/python benchmarks/sharing.py                    # SQLite + PostgreSQL, full size
    .venv/bin/python benchmarks/sharing.py --calls 40 --overhead-n 1000 --dialect sqlite
    .venv/bin/python benchmarks/sharing.py --all              # and the sibling benchmarks

``--all`` also runs ``benchmarks/sharing_checkouts.py`` and ``benchmarks/sharing_stores.py``
when they exist (two checkouts on one ledger; value stores). Every run is a fresh
``ledgerflow run`` process, so times include start-up. Figures from a loaded machine are
noisy: compare ratios, and use ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from statistics import median
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DIALECTS = ("sqlite", "postgresql")
SIBLINGS = ("sharing_checkouts.py", "sharing_stores.py")
TARGET_WALL_RATIO = 1.3
TARGET_OVERHEAD = 0.15

PIPELINE = """
import os, time
from ledgerflow import task

barrier = os.environ.get("BARRIER")
if barrier:  # imported (start-up done): wait until every run is, then start together
    open(os.path.join(barrier, f"ready-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(barrier, "go")):
        time.sleep(0.005)

@task
def slow(i: int) -> int:
    fd = os.open(os.environ["MARKS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{i}\\n".encode())
    os.close(fd)
    time.sleep(float(os.environ["SLEEP"]))
    return i

@task
def pipeline(n: int) -> list:
    return [slow(i) for i in range(n)]
"""


def _engine_bench() -> Any:
    sys.path.insert(0, str(HERE))
    import engine  # benchmarks/engine.py: its fresh ledgers and its fan-out measurement

    return engine


def _set_cache(config: Path, **cache: Any) -> None:
    data = yaml.safe_load(config.read_text())
    data.setdefault("cache", {}).update(cache)
    config.write_text(yaml.safe_dump(data))


def _span(config: Path) -> float:
    """Seconds from the first run's start to the last run's end, as the ledger records them."""
    from sqlalchemy import text

    from ledgerflow.config import load_settings
    from ledgerflow.db import Database

    database = Database(load_settings(config))
    try:
        with database.engine().connect() as conn:
            first, last = conn.execute(
                text("SELECT MIN(started_at), MAX(ended_at) FROM lf_run")
            ).one()
    finally:
        database.dispose()
    if isinstance(first, str):  # SQLite hands back text for an aggregate
        from datetime import datetime

        first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
    return float((last - first).total_seconds())


def _runs(config: Path, count: int, calls: int, sleep: float) -> tuple[float, float, int, int]:
    """``count`` runs of the pipeline started together: (seconds from their launch, seconds
    from the first run's start to the last run's end in the ledger, executions, failures)."""
    directory = config.parent
    (directory / "pipe_share.py").write_text(textwrap.dedent(PIPELINE))
    marks = directory / f"marks-{time.monotonic_ns()}.txt"
    barrier = directory / f"barrier-{time.monotonic_ns()}"
    barrier.mkdir()
    env = {**os.environ, "MARKS": str(marks), "SLEEP": str(sleep), "BARRIER": str(barrier)}
    command = [sys.executable, "-m", "ledgerflow", "--config", str(config), "run", "-q",
               "pipe_share.py:pipeline", "--n", str(calls)]  # fmt: skip
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            command, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    while len(list(barrier.glob("ready-*"))) < count:
        if any(child.poll() is not None for child in children):
            break
        time.sleep(0.005)
    (barrier / "go").touch()
    failures = 0
    for child in children:
        _out, err = child.communicate()
        if child.returncode != 0:
            failures += 1
            print(f"  a run failed ({child.returncode}): {err.strip().splitlines()[-1:]}")
    ended = time.perf_counter()
    executions = len(marks.read_text().splitlines()) if marks.exists() else 0
    return ended - started, _span(config), executions, failures


def concurrent(
    dialect: str, runs: int, calls: int, sleep: float, baseline: bool, workdir: Path
) -> dict[str, Any]:
    engine = _engine_bench()
    with engine.fresh_ledger(dialect, workdir) as config:
        alone_launch, alone, alone_executions, _ = _runs(config, 1, calls, sleep)
    with engine.fresh_ledger(dialect, workdir) as config:
        launch, wall, executions, failures = _runs(config, runs, calls, sleep)
    found: dict[str, Any] = {
        "dialect": dialect, "runs": runs, "calls": calls, "alone_seconds": alone,
        "alone_executions": alone_executions, "seconds": wall, "executions": executions,
        "failures": failures, "ratio": wall / alone, "alone_from_launch": alone_launch,
        "from_launch": launch, "ratio_from_launch": launch / alone_launch,
    }  # fmt: skip
    if baseline:
        with engine.fresh_ledger(dialect, workdir) as config:
            _set_cache(config, claim=False)
            _launch, found["unclaimed_seconds"], found["unclaimed_executions"], _ = _runs(
                config, runs, calls, sleep
            )
    return found


def overhead(dialect: str, n: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """Fan-out first run, claims on and off, ``repeat`` pairs: the pairs alternate which
    goes first, and the figure is the median of the per-pair ratios (each pair ran under
    about the same load), with the medians of wall and CPU seconds beside it. The CPU
    ratio (the run's process, all its threads) is what a loaded machine disturbs least."""
    engine = _engine_bench()
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for attempt in range(repeat):
        for claim in (True, False) if attempt % 2 == 0 else (False, True):
            with engine.fresh_ledger(dialect, workdir) as config:
                _set_cache(config, claim=claim)
                data = engine._subprocess([sys.executable, str(HERE / "engine.py"), "_measure",
                                           str(config), "fanout", str(n), "first"])  # fmt: skip
            wall[claim].append(data["seconds"])
            cpu[claim].append(data["cpu_seconds"])
    ratios = [on / off for on, off in zip(wall[True], wall[False], strict=True)]
    cpu_ratios = [on / off for on, off in zip(cpu[True], cpu[False], strict=True)]
    return {"dialect": dialect, "n": n, "repeat": repeat,
            "claims_on": median(wall[True]), "claims_off": median(wall[False]),
            "cpu_on": median(cpu[True]), "cpu_off": median(cpu[False]),
            "overhead": median(ratios) - 1, "cpu_overhead": median(cpu_ratios) - 1,
            "pairs": [round(r - 1, 3) for r in ratios]}  # fmt: skip


def _have_postgres() -> bool:
    from ledgerflow.testing.postgres import find_server

    return find_server() is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dialect", choices=DIALECTS, action="append")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--overhead-n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", action="store_true",
                        help="also run the concurrent runs without claims (cache.claim: false)")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-concurrent", action="store_true")
    parser.add_argument("--all", action="store_true",
                        help=f"also run {' and '.join(SIBLINGS)} when they exist")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    dialects = args.dialect or list(DIALECTS)
    if "postgresql" in dialects and not _have_postgres():
        print("note: no PostgreSQL server found; PostgreSQL is skipped")
        dialects = [d for d in dialects if d != "postgresql"]

    checks: list[tuple[str, bool]] = []
    figures: dict[str, Any] = {"concurrent": [], "overhead": []}
    with tempfile.TemporaryDirectory(prefix="lf-sharing-") as tmp:
        workdir = Path(tmp)
        for dialect in dialects:
            if not args.skip_concurrent:
                found = concurrent(dialect, args.runs, args.calls, args.sleep, args.baseline,
                                   workdir)  # fmt: skip
                figures["concurrent"].append(found)
                print(f"{dialect}: {args.runs} runs of {args.calls} calls ({args.sleep * 1000:.0f} ms "
                      f"each): {found['executions']} executions in {found['seconds']:.2f} s; one run "
                      f"alone {found['alone_seconds']:.2f} s -> {found['ratio']:.2f}x (runs' span in "
                      f"the ledger; from the processes' launch, start-up included: "
                      f"{found['from_launch']:.2f} s against {found['alone_from_launch']:.2f} s -> "
                      f"{found['ratio_from_launch']:.2f}x)")  # fmt: skip
                if "unclaimed_executions" in found:
                    print(f"{dialect}: the same without claims: {found['unclaimed_executions']} "
                          f"executions in {found['unclaimed_seconds']:.2f} s")
                checks.append((f"{dialect}: executions {found['executions']} == {args.calls}",
                               found["executions"] == args.calls and not found["failures"]))
                checks.append((f"{dialect}: wall {found['ratio']:.2f}x one run alone "
                               f"(<= {TARGET_WALL_RATIO}x)", found["ratio"] <= TARGET_WALL_RATIO))
            if not args.skip_overhead:
                cost = overhead(dialect, args.overhead_n, args.repeat, workdir)
                figures["overhead"].append(cost)
                print(f"{dialect}: fan-out N={args.overhead_n:,} first run (median of "
                      f"{cost['repeat']} pairs): {cost['claims_on']:.2f} s with claims, "
                      f"{cost['claims_off']:.2f} s without -> {cost['overhead'] * 100:+.1f}% "
                      f"wall (pairs {cost['pairs']}); CPU {cost['cpu_on']:.2f} s / "
                      f"{cost['cpu_off']:.2f} s -> {cost['cpu_overhead'] * 100:+.1f}%")  # fmt: skip
                checks.append((f"{dialect}: claiming overhead {cost['overhead'] * 100:+.1f}% "
                               f"(<= {TARGET_OVERHEAD * 100:.0f}%)",
                               cost["overhead"] <= TARGET_OVERHEAD))  # fmt: skip
    print("\ntargets:")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    if args.json:
        print(json.dumps(figures))
    if args.all:
        for name in SIBLINGS:
            script = HERE / name
            if script.exists():
                print(f"\n== {name} ==", flush=True)
                subprocess.run([sys.executable, str(script)], check=False)
            else:
                print(f"\nnote: {name} does not exist (yet)")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
