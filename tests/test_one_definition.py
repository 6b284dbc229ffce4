"""Each concept is defined in one module that everybody imports (STYLE.md, rule 16)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from ledgerflow.db.chunks import chunks
from ledgerflow.db.times import naive_utc, utc

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ledgerflow"

#: function name -> the one module allowed to define it (private twins count too)
HOMES = {
    "utc": "db/times.py",
    "utcnow": "db/times.py",
    "naive_utc": "db/times.py",
    "chunks": "db/chunks.py",
    "parse_tag": "ledger/tags.py",
    "check_tag": "ledger/tags.py",
    "arguments_hash": "hashing/digest.py",
    "hash_arguments": "engine/arguments.py",
    "run_status": "ledger/status.py",
    "executor_class": "engine/executor.py",
}


def test_each_helper_is_defined_once() -> None:
    found: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and not isinstance(node, ast.AsyncFunctionDef):
                name = node.name.lstrip("_")
                if name in HOMES:
                    found.setdefault(name, []).append(path.relative_to(PACKAGE).as_posix())
    twins = {
        name: places
        for name, places in found.items()
        if set(places) != {HOMES[name]}
        and not (name == "hash_arguments" and set(places) <= {HOMES[name], "engine/graph.py", "engine/plan.py"})
    }
    assert not twins, f"defined outside their home module: {twins}"


def test_times_are_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert utc(naive) == naive.replace(tzinfo=UTC)
    paris = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert utc(paris) == naive.replace(tzinfo=UTC) and utc(paris).tzinfo is UTC
    assert naive_utc(paris) == naive
    assert utc(None) is None


def test_chunks_are_sorted_distinct_and_bounded() -> None:
    assert list(chunks(["b", "a", "b", "", None, "c"], size=2)) == [["a", "b"], ["c"]]
    assert [len(c) for c in chunks(map(str, range(2000)))] == [900, 900, 200]
    assert list(chunks([])) == []
