"""Lazy graphs: nesting, dynamic fan-out, recursion, deep chains, identical calls."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import ledgerflow
from ledgerflow import task
from ledgerflow.config.settings import Settings
from ledgerflow.testing.pipelines import LedgerRows

CALLS: list[int] = []


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(values: list[int]) -> int:
    return sum(values)


@task
def width(n: int) -> int:
    return n * 2


@task
def fan_out(n: int) -> list[int]:
    return [inc(i) for i in range(n)]


@task
def dynamic(n: int) -> int:
    # the width of the fan-out is only known when width() has run
    return total(fan_out(width(n)))


@task
def fib(n: int) -> int:
    if n < 2:
        return n
    return add(fib(n - 1), fib(n - 2))


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def countdown(n: int) -> int:
    return countdown(n - 1) if n > 0 else 0


@task
def chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = inc(x)
    return x


@task
def counted(x: int) -> int:
    CALLS.append(x)
    return x


@dataclass(frozen=True)
class Summary:
    name: str
    values: list[int]
    best: int


@task
def summarise(data: dict[str, object]) -> Summary:
    return Summary(str(data["name"]), list(data["values"]), max(data["values"]))  # type: ignore[arg-type]


@task
def nested(n: int) -> dict[str, object]:
    return {"name": "s", "values": [inc(i) for i in range(n)], "pair": (inc(10), inc(20))}


def test_calls_nest_in_lists_dicts_tuples_and_dataclasses(ledger_settings: Settings) -> None:
    result = ledgerflow.run(
        summarise({"name": "run", "values": (inc(1), inc(2), 7)}), settings=ledger_settings
    )
    assert result == Summary("run", [2, 3, 7], 7)
    assert ledgerflow.run(nested(2), settings=ledger_settings) == {
        "name": "s", "values": [1, 2], "pair": (11, 21),
    }  # fmt: skip
    assert ledgerflow.run(Summary("x", [inc(1)], inc(5)), settings=ledger_settings) == Summary(  # type: ignore[arg-type]
        "x", [2], 6
    )


def test_dynamic_fan_out_and_recursion(ledger_settings: Settings, ledger: LedgerRows) -> None:
    result = ledgerflow.execute(dynamic(3), settings=ledger_settings)
    assert result.value == sum(range(1, 7))
    assert result.counts["done"] == 1 + 1 + 1 + 6 + 1  # dynamic, width, fan_out, 6 inc, total
    runs = {r["id"]: r for r in ledger.rows("lf_task_run", run_id=result.run_id)}
    parents = {r["task_name"].rsplit(".", 1)[1]: runs.get(r["parent_id"]) for r in runs.values()}
    assert parents["dynamic"] is None
    assert parents["total"]["task_name"].endswith("dynamic")
    assert parents["inc"]["task_name"].endswith("fan_out")

    fibs = ledgerflow.execute(fib(12), settings=ledger_settings)
    assert fibs.value == 144
    # each fib(k) runs once: identical calls in one run are made once
    done = ledger.rows("lf_task_run", run_id=fibs.run_id, status="done")
    assert sum(r["task_name"] == fib.fullname for r in done) == 13  # fib(0) .. fib(12)
    assert sum(r["task_name"] == add.fullname for r in done) == 11  # for fib(2) .. fib(12)


def test_identical_calls_in_a_run_execute_once(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    CALLS.clear()
    result = ledgerflow.execute(
        [counted(1), counted(1), inc(counted(2)), inc(counted(2))], settings=ledger_settings
    )
    assert result.value == [1, 1, 3, 3]
    assert sorted(CALLS) == [1, 2]
    rows = ledger.rows("lf_task_run", run_id=result.run_id, status="cached")
    assert rows and all(r["cached_from"] == result.run_id for r in rows)


def test_chains_thousands_deep_need_no_recursion(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    depth = 2_000
    assert depth > sys.getrecursionlimit()
    x: object = 0
    for _ in range(depth):
        x = inc(x)
    result = ledgerflow.execute(x, settings=ledger_settings)
    assert result.status == "done" and result.value == depth
    assert ledger.count("lf_task_run", run_id=result.run_id, status="done") == depth
    assert ledgerflow.run(chain(depth), settings=ledger_settings) == depth
    # a task that returns a call of itself, 2,000 times over
    assert ledgerflow.run(countdown(depth), settings=ledger_settings) == 0
    again = ledgerflow.execute(x, settings=ledger_settings)
    assert again.value == depth and again.counts["cached"] == depth


def test_cached_results_read_only_when_needed_still_feed_new_calls(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    x: object = 0
    for _ in range(100):  # long enough for the cache entries of inc to be read at once
        x = inc(x)
    assert ledgerflow.run(x, settings=ledger_settings) == 100
    result = ledgerflow.execute(
        {"sum": total([x, inc(x)]), "next": width(x)}, settings=ledger_settings
    )
    assert result.value == {"sum": 201, "next": 200}
    assert result.counts["cached"] == 100 and result.counts["done"] == 3
    (row,) = ledger.rows("lf_task_run", run_id=result.run_id, task_name=width.fullname)
    (argument,) = ledger.rows("lf_argument", args_hash=row["args_hash"])
    assert argument["key"] == "n"
