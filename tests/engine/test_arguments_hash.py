"""A dry run hashes a call's arguments exactly as a real run does (one routine for both)."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import ledgerflow
from ledgerflow import File, task
from ledgerflow.config.settings import Settings
from ledgerflow.engine.plan import Planner
from ledgerflow.engine.workspace import open_workspace, task_surroundings
from ledgerflow.hashing import arguments_hash, combine
from ledgerflow.testing.pipelines import LedgerRows


@task
def make(i: Any) -> Any:
    return i


@task
def gather(items: Any, mapping: Any, pair: Any, *rest: Any, scale: float = 1.5, **extra: Any) -> str:
    return repr((items, mapping, pair, rest, scale, extra))


def tricky(path: Path) -> Any:
    shared = make(1)
    return gather(
        [shared, [make(2), {"x": make(3), "y": shared}], make(1)],  # a call twice, and its twin
        {"b": make({"k": [1, 2]}), "a": None, 3: frozenset({1, 2})},
        (make((4, 5)), b"\x00\xff", -0.0),
        make(Decimal("1.10")),
        10**30,
        File(path),
        scale=math.inf,
        flag=True,
        nested={"deep": [make("é"), (make(None),)]},
    )


def test_a_dry_run_hashes_arguments_like_the_run(
    ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path
) -> None:
    data = tmp_path / "in.txt"
    data.write_text("readings\n")
    result = ledgerflow.execute(tricky(data), settings=ledger_settings)
    assert result.status == "done"
    recorded = {(r["task_name"], r["args_hash"]) for r in ledger.rows("lf_task_run")}

    with open_workspace(ledger_settings) as space, task_surroundings(ledger_settings):
        planner = Planner(space.values(), space.reader, frozenset())
        planned = planner.plan(tricky(data))
    assert {n.status for n in planned} == {"cached"}
    assert {(n.task.fullname, n.args_hash) for n in planned} == recorded
    assert len(recorded) == 9  # make(1) and its twin are one call

    plan = ledgerflow.execute(tricky(data), settings=ledger_settings, dry_run=True).plan
    assert plan is not None and {e.status for e in plan} == {"cached"}


def test_the_arguments_hash_pairs_names_with_value_hashes() -> None:
    assert arguments_hash(("a", "b"), ("h1", "h2")) == combine("a", "h1", "b", "h2")
    assert arguments_hash(("a", "b"), ("h1", "h2")) != arguments_hash(("b", "a"), ("h1", "h2"))
    assert arguments_hash((), ()) == combine()
