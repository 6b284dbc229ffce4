"""Two checkouts on one ledger: the cache hit rate of B's first run after A's (target 100%).

Checkout A and checkout B are two directories, each with its own copy of one pipeline
(``--calls`` calls returning plain numbers, tuples with bytes, pickled objects and one
large value) and its own ``ledgerflow.yml`` naming the same ledger (a fresh PostgreSQL
database by default; ``--dialect sqlite`` for one SQLite file). Large values go to a
folder both reach (``values.store: file://...``; on PostgreSQL the ledger itself would do
too). Every run is a separate ``ledgerflow run`` process, as two people's would be.

Printed: A's first run; B's first run (the pipeline's entry is one cache hit); and B's run
with ``--rerun main``, which executes the entry task again so every call under it is
looked up: its hit rate over those calls is the figure (cached / (cached + done)).

    .venv/bin/python benchmarks/sharing_checkouts.py [--calls 200] [--dialect postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TARGET = 1.0

PIPELINE = """
from ledgerflow import task


class Point:
    def __init__(self, x):
        self.x = x


@task
def number(i: int) -> int:
    return i * i


@task
def pair(i: int) -> tuple:
    return (i, str(i).encode() * 8)


@task
def point(i: int) -> Point:
    return Point(i)


@task
def blob(n: int) -> bytes:
    return bytes(range(256)) * n


@task
def main(n: int = 200) -> list:
    kinds = (number, pair, point)
    return [kinds[i % 3](i) for i in range(n - 2)] + [blob(8192)]
"""


def _checkout(root: Path, entry: dict[str, Any], store: Path) -> Path:
    root.mkdir(parents=True)
    (root / "flow.py").write_text(textwrap.dedent(PIPELINE))
    config = {"databases": {"default": entry},
              "values": {"inline_max_bytes": 65536, "store": f"file://{store}"}}  # fmt: skip
    (root / "ledgerflow.yml").write_text(yaml.safe_dump(config))
    return root


def _run(root: Path, calls: int, *options: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "run", "flow.py:main", "--n", str(calls), "--json",
         *options],
        cwd=root, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"ledgerflow run failed in {root}:\n{proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def measure(dialect: str, calls: int, workdir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import engine  # benchmarks/engine.py: its fresh, migrated ledgers

    with engine.fresh_ledger(dialect, workdir) as config:
        entry = yaml.safe_load(config.read_text())["databases"]["default"]
        if dialect == "sqlite":
            entry = {"dialect": "sqlite", "path": str(config.parent / entry["path"])}
        store = config.parent / "shared-values"
        a = _checkout(config.parent / "alice" / "project", entry, store)
        b = _checkout(config.parent / "bob" / "checkout", entry, store)
        first = _run(a, calls)
        second = _run(b, calls)
        third = _run(b, calls, "--rerun", "main")
    below = third["counts"]["cached"] + third["counts"]["done"] - 1  # the calls under main
    return {
        "dialect": dialect, "calls": first["counts"]["done"],
        "a": first["counts"], "b": second["counts"], "b_rerun_main": third["counts"],
        "hit_rate": third["counts"]["cached"] / below if below else 0.0,
        "b_first_hit_rate": second["counts"]["cached"]
        / max(1, second["counts"]["cached"] + second["counts"]["done"]),
        "notes": second["notes"] + third["notes"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--dialect", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lf-checkouts-") as tmp:
        found = measure(args.dialect, args.calls, Path(tmp))
    print(f"{found['dialect']}: A's first run computed {found['calls']} calls")
    print(f"{found['dialect']}: B's first run: {found['b']['cached']} cached, "
          f"{found['b']['done']} done (hit rate {found['b_first_hit_rate']:.0%})")
    print(f"{found['dialect']}: B with --rerun main: {found['b_rerun_main']['cached']} of the "
          f"{found['calls'] - 1} calls under main cached -> hit rate {found['hit_rate']:.1%}")
    if found["notes"]:
        print("notes:", *found["notes"], sep="\n  ")
    ok = found["hit_rate"] >= TARGET and found["b_first_hit_rate"] >= TARGET
    ok = ok and not found["notes"]
    print(f"target: {'PASS' if ok else 'FAIL'}  hit rate of B after A {found['hit_rate']:.1%} "
          f"(target {TARGET:.0%}), no notes")
    if args.json:
        print(json.dumps(found))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
