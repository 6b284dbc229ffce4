"""``ledgerflow log`` on a wide run: lines printed and wall time, grouped and expanded.

    .venv/bin/python benchmarks/log.py [--tasks 10000] [--repeats 3]

Runs ``main(n)`` -> ``n`` calls of ``summarize`` in a scratch SQLite project (the real
engine, the real ledger), then times the ``ledgerflow log`` command as a user runs it
(a new process, output to a pipe), best of ``--repeats``:

* ``log`` (the default: siblings of one task grouped on one line);
* ``log --depth 1`` and ``log --limit 50 --expand``;
* ``log --all`` (every task run on its own line: what ``log`` printed before grouping);
* ``python -c pass`` and ``ledgerflow --version``, measured in the same run, for the floor.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = '''
from ledgerflow import task

@task
def summarize(i: int) -> int:
    return i * 2

@task
def main(n: int = 10) -> list[int]:
    return [summarize(i) for i in range(n)]
'''

LEDGERFLOW = [sys.executable, "-m", "ledgerflow"]


def timed(args: list[str], cwd: Path, repeats: int) -> tuple[float, int]:
    """Best wall time of ``repeats`` runs, and the lines the command printed."""
    best, lines = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - started)
        lines = len(done.stdout.splitlines())
    return best, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lf-log-bench-") as folder:
        root = Path(folder)
        (root / "ledgerflow.yml").write_text(
            "databases:\n  default: {dialect: sqlite, path: ledgerflow.db}\n", encoding="utf-8")
        (root / "pipe.py").write_text(PIPELINE, encoding="utf-8")
        subprocess.run([*LEDGERFLOW, "db", "upgrade"], cwd=root, check=True, capture_output=True)
        subprocess.run([*LEDGERFLOW, "run", "pipe.py:main", "--n", str(args.tasks)], cwd=root,
                       check=True, capture_output=True)
        print(f"run of main -> {args.tasks:,} x summarize ({args.tasks + 1:,} task runs), "
              f"SQLite, best of {args.repeats}")
        rows = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("ledgerflow --version", [*LEDGERFLOW, "--version"]),
            ("ledgerflow log", [*LEDGERFLOW, "log"]),
            ("ledgerflow log --depth 1", [*LEDGERFLOW, "log", "--depth", "1"]),
            ("ledgerflow log --expand --limit 50", [*LEDGERFLOW, "log", "--expand", "--limit", "50"]),
            ("ledgerflow log --all", [*LEDGERFLOW, "log", "--all"]),
        ]
        for label, command in rows:
            seconds, lines = timed(command, root, args.repeats)
            print(f"  {label:<36} {seconds:6.2f} s  {lines:>7,} lines")


if __name__ == "__main__":
    main()
