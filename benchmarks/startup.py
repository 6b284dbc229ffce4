"""Start-up benchmark: what every ``ledgerflow`` command pays before doing its work.

Each command runs N times (default 5) in a fresh process, the commands taking turns so
that a busy moment of the machine hits all of them alike; the median wall time is compared
with its target. ``python -c pass`` and ``python -c "import sqlalchemy"`` are measured in
the same run, as the floor and the cost of the one heavy library a run needs.

    .venv/bin/python benchmarks/startup.py            # medians of 5
    .venv/bin/python benchmarks/startup.py --n 11 --strict

The ``run`` and ``runs`` commands use a temporary project: SQLite, no plugins, migrated
with ``ledgerflow db upgrade``, one trivial task in ``one.py`` (run once before timing, so
the timed runs find it cached, as a re-run would; ``--no-cache`` is shown for comparison).
Targets hold for a quiet machine; the CPU column (user + system time of the child) is less
disturbed by other processes than the wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TASK = '''from ledgerflow import task


@task
def one() -> int:
    return 1
'''
CONFIG = "databases:\n  default:\n    dialect: sqlite\n    path: ledger.db\n"


@dataclass
class Case:
    label: str
    argv: list[str]
    target: float | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)


def ledgerflow_command() -> list[str]:
    """The installed ``ledgerflow`` script next to this Python, else ``python -m ledgerflow``."""
    script = Path(sys.executable).with_name("ledgerflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledgerflow"]


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv``; stops the benchmark if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def make_project(directory: Path, lf: list[str]) -> None:
    (directory / "ledgerflow.yml").write_text(CONFIG, encoding="utf-8")
    (directory / "one.py").write_text(TASK, encoding="utf-8")
    for argv in (["db", "upgrade"], ["run", "one.py:one"]):
        timed([*lf, *argv], directory)


def cases(lf: list[str]) -> list[Case]:
    py = sys.executable
    return [
        Case("python -c pass", [py, "-c", "pass"]),
        Case('python -c "import sqlalchemy"', [py, "-c", "import sqlalchemy"]),
        Case("import ledgerflow", [py, "-c", "import ledgerflow"], 0.15),
        Case("from ledgerflow import task, File, context",
             [py, "-c", "from ledgerflow import task, File, context"]),
        Case("ledgerflow --help", [*lf, "--help"], 0.2),
        Case("ledgerflow run one.py:one", [*lf, "run", "one.py:one"], 0.5),
        Case("ledgerflow run --no-cache one.py:one", [*lf, "run", "--no-cache", "one.py:one"]),
        Case("ledgerflow runs", [*lf, "runs"], 0.4),
    ]


def report(results: list[Case], n: int) -> bool:
    floor = results[0].median
    print(f"\nmedians of {n} (seconds); 'net' is beyond python -c pass ({floor:.3f} s)")
    print(f"{'command':<44}{'wall':>8}{'net':>8}{'min':>8}{'cpu':>8}   target")
    ok = True
    for case in results:
        verdict = ""
        if case.target is not None:
            passed = case.median <= case.target
            ok = ok and passed
            verdict = f"<= {case.target:.2f}  {'pass' if passed else 'MISS'}"
        print(f"{case.label:<44}{case.median:>8.3f}{case.median - floor:>8.3f}"
              f"{min(case.wall):>8.3f}{statistics.median(case.cpu):>8.3f}   {verdict}")
    print("\ntargets are for a quiet machine: with other work running, compare the cpu column "
          "and rerun with --n 11.")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5, help="runs of each command (default 5)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")

    lf = ledgerflow_command()
    directory = Path(tempfile.mkdtemp(prefix="lf-startup-"))
    env_note = os.environ.get("LEDGERFLOW_CONFIG")
    if env_note:
        print(f"note: LEDGERFLOW_CONFIG={env_note} is ignored here (a temporary project is used)")
        os.environ.pop("LEDGERFLOW_CONFIG")
    try:
        make_project(directory, lf)
        results = cases(lf)
        for case in results:  # one untimed round: file-system caches, bytecode
            timed(case.argv, directory)
        for _ in range(args.n):
            for case in results:
                wall, cpu = timed(case.argv, directory)
                case.wall.append(wall)
                case.cpu.append(cpu)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    ok = report(results, args.n)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
