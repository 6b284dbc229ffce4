"""Two checkouts of one pipeline on one ledger share every cache entry, with no key.

Each checkout is its own directory with its own copy of the pipeline and its own
``ledgerflow.yml``; the runs are separate processes (``ledgerflow run``), as two people's
would be. B's first run after A's is all cache hits: plain values, pickles (same writer,
so trusted) and a large value in the shared store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from ledgerflow.testing.projects import make_project

PIPELINE = textwrap.dedent(
    '''
    from dataclasses import dataclass

    from ledgerflow import task


    class Point:
        def __init__(self, x):
            self.x = x


    @dataclass
    class Summary:
        total: int
        names: tuple


    @task
    def square(n: int) -> int:
        return n * n


    @task
    def point(n: int) -> Point:
        return Point(n)


    @task
    def summary(values: list) -> Summary:
        return Summary(sum(values), tuple(str(v) for v in values))


    @task
    def blob(n: int) -> bytes:
        return bytes(range(256)) * n


    @task
    def main(n: int = 6) -> list:
        squares = [square(i) for i in range(n)]
        return [summary(squares), [point(i) for i in range(n)], blob(4096), (n, b"end")]
    '''
)


def checkout(root: Path, entry: dict[str, Any], store: Path) -> Path:
    root.mkdir(parents=True)
    (root / "flow.py").write_text(PIPELINE)
    make_project(root, entry, values={"inline_max_bytes": 4096, "store": f"file://{store}"})
    return root


def run(root: Path, *options: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "run", "flow.py:main", "--json", *options],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_b_after_a_is_all_cache_hits(
    tmp_path: Path, migrated_database_entry: dict[str, Any]
) -> None:
    entry = dict(migrated_database_entry)
    store = tmp_path / "shared-values"
    a = checkout(tmp_path / "alice" / "project", entry, store)
    b = checkout(tmp_path / "bob" / "work" / "project", entry, store)
    first = run(a)
    assert first["status"] == "done" and first["counts"]["done"] > 10
    assert first["counts"]["cached"] == 0
    calls = first["counts"]["done"]
    second = run(b)  # the whole pipeline is one cache hit
    assert second["counts"]["cached"] == 1 and second["counts"]["done"] == 0, second
    assert second["result"] == first["result"] and second["notes"] == []
    third = run(b, "--rerun", "main")  # every call under it, each a hit of A's entries
    assert third["counts"]["done"] == 1 and third["counts"]["cached"] == calls - 1, third
    assert third["result"] == first["result"] and third["notes"] == []
    for root in (a, b):  # nothing per checkout is needed or made
        assert not (root / ".ledgerflow" / "signing.key").exists()
