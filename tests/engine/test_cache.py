"""The content-addressed cache: code, version, arguments and files; explain says why."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import ledgerflow
from ledgerflow import File, task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.testing.pipelines import LedgerRows

SOURCE = """
from ledgerflow import task

FACTOR = 10

def scale(x):
    return x * FACTOR

@task(version="1")
def compute(some_data: int, multiplier: int) -> int:
    return scale(some_data) * multiplier
"""

RUNS: list[str] = []


def _statuses(ledger: LedgerRows, run_id: str) -> list[str]:
    return sorted(r["status"] for r in ledger.rows("lf_task_run", run_id=run_id))


def test_editing_a_helper_invalidates_and_editing_a_comment_does_not(
    ledger_settings: Settings, ledger: LedgerRows, load_module: Callable[[str], ModuleType]
) -> None:
    mod = load_module(SOURCE)
    first = ledgerflow.execute(mod.compute(2, 3), settings=ledger_settings)
    assert first.value == 60 and _statuses(ledger, first.run_id) == ["done"]
    assert ledgerflow.explain(mod.compute(2, 3), settings=ledger_settings).status == "cached"

    mod = load_module(SOURCE.replace("def scale(x):", "def scale(x):\n    # a comment\n\n"))
    again = ledgerflow.execute(mod.compute(2, 3), settings=ledger_settings)
    assert _statuses(ledger, again.run_id) == ["cached"]

    mod = load_module(SOURCE.replace("return x * FACTOR", "return x * FACTOR + 1"))
    explanation = ledgerflow.explain(mod.compute(2, 3), settings=ledger_settings)
    assert explanation.status == "run"
    assert explanation.reasons == ["code changed: helper pipe_mod.scale"]
    changed = ledgerflow.execute(mod.compute(2, 3), settings=ledger_settings)
    assert changed.value == 63 and _statuses(ledger, changed.run_id) == ["done"]

    mod = load_module(
        SOURCE.replace("return x * FACTOR", "return x * FACTOR + 1").replace('"1"', '"2"')
    )
    explanation = ledgerflow.explain(mod.compute(2, 3), settings=ledger_settings)
    assert explanation.reasons == ["version changed (1 -> 2)"]


def test_explain_names_the_argument_that_changed_or_says_never_run(
    ledger_settings: Settings, load_module: Callable[[str], ModuleType]
) -> None:
    mod = load_module(SOURCE)
    assert ledgerflow.explain(mod.compute(1, 2), settings=ledger_settings).reasons == ["never run"]
    ledgerflow.run(mod.compute(1, 2), settings=ledger_settings)
    explanation = ledgerflow.explain(mod.compute(1, 3), settings=ledger_settings)
    assert explanation.status == "run"
    assert explanation.reasons == ["argument 'multiplier' changed (2 -> 3)"]
    assert explanation.task_name == "pipe_mod.compute"
    assert "pipe_mod.compute: run" in explanation.render()


@task
def count_lines(data: File) -> int:
    RUNS.append("count_lines")
    return len(data.read().splitlines())


@task
def write_report(name: str, text: str) -> File:
    RUNS.append("write_report")
    return File(f"results/{name}.txt").write(text)


@task(cache=False)
def uncached(x: int) -> int:
    RUNS.append("uncached")
    return x


@task
def cached(x: int) -> int:
    RUNS.append("cached")
    return x


def test_file_arguments_hash_by_content(ledger_settings: Settings) -> None:
    data = ledger_settings.root / "data" / "a.fastq"
    data.parent.mkdir()
    data.write_text("r1\nr2\n")
    RUNS.clear()
    assert ledgerflow.run(count_lines(File(data)), settings=ledger_settings) == 2
    os.utime(data, (time.time() + 5, time.time() + 5))  # touched, same content
    assert ledgerflow.run(count_lines(File(data)), settings=ledger_settings) == 2
    assert RUNS == ["count_lines"]
    data.write_text("r1\nr2\nr3\n")
    explanation = ledgerflow.explain(count_lines(File(data)), settings=ledger_settings)
    assert explanation.reasons == [f"file changed: {data.as_posix()}"]
    assert ledgerflow.run(count_lines(File(data)), settings=ledger_settings) == 3
    assert RUNS == ["count_lines", "count_lines"]


def test_fast_file_hashing_uses_size_and_mtime(ledger_settings: Settings) -> None:
    path = ledger_settings.path
    assert path is not None
    path.write_text(path.read_text() + "cache: {file_hash: fast}\n")
    settings = load_settings(path)
    data = settings.root / "a.txt"
    data.write_text("x\n")
    RUNS.clear()
    ledgerflow.run(count_lines(File(data)), settings=settings)
    ledgerflow.run(count_lines(File(data)), settings=settings)
    os.utime(data, (time.time() + 5, time.time() + 5))  # same bytes, new mtime: a miss
    ledgerflow.run(count_lines(File(data)), settings=settings)
    assert RUNS == ["count_lines", "count_lines"]


def test_a_cached_file_result_is_used_only_while_the_file_matches(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    RUNS.clear()
    report = ledgerflow.run(write_report("s4", "calls"), settings=ledger_settings)
    assert isinstance(report, File) and report.path == "results/s4.txt"
    assert (ledger_settings.root / report.path).read_text() == "calls"
    (row,) = ledger.rows("lf_file")
    assert row["path"] == "results/s4.txt" and row["size"] == 5
    assert ledger.rows("lf_value", hash=row["hash"])[0]["type_name"] == "ledgerflow.values.File"
    ledgerflow.run(write_report("s4", "calls"), settings=ledger_settings)
    assert RUNS == ["write_report"]

    (ledger_settings.root / "results" / "s4.txt").write_text("edited by hand")
    explanation = ledgerflow.explain(write_report("s4", "calls"), settings=ledger_settings)
    assert explanation.reasons == ["file changed: results/s4.txt"]
    again = ledgerflow.run(write_report("s4", "calls"), settings=ledger_settings)
    assert (ledger_settings.root / again.path).read_text() == "calls"
    assert RUNS == ["write_report", "write_report"]


def test_cache_switches_cache_false_rerun_and_no_cache(ledger_settings: Settings) -> None:
    RUNS.clear()
    for _ in range(2):
        ledgerflow.run([uncached(1), cached(1)], settings=ledger_settings)
    assert sorted(RUNS) == ["cached", "uncached", "uncached"]
    RUNS.clear()
    ledgerflow.run([uncached(1), cached(1)], settings=ledger_settings, rerun=["cached"])
    ledgerflow.run([cached(1)], settings=ledger_settings, rerun=[cached.fullname])
    ledgerflow.run([cached(1)], settings=ledger_settings, cache=False)
    assert sorted(RUNS) == ["cached", "cached", "cached", "uncached"]
    RUNS.clear()
    ledgerflow.run([cached(1)], settings=ledger_settings)
    assert RUNS == []
    explanation = ledgerflow.explain(uncached(1), settings=ledger_settings)
    assert explanation.reasons == ["caching is off for this task (cache=False)"]


@task
def slow_square(x: int) -> int:
    time.sleep(0.02)
    return x * x


def _run_in_child(config: str, queue: multiprocessing.Queue[object]) -> None:
    try:
        queue.put(ledgerflow.run([slow_square(i) for i in range(20)], config=config))
    except BaseException as exc:  # report, never hang the parent
        queue.put(repr(exc))


def test_concurrent_runs_share_the_cache_safely(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = context.Queue()
    children = [
        context.Process(target=_run_in_child, args=(str(ledger_settings.path), queue))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    expected = [i * i for i in range(20)]
    assert results == [expected, expected]
    assert ledger.count("lf_cache_entry") == 20
    assert ledger.count("lf_call") == 20 and ledger.count("lf_run", status="done") == 2
    assert ledgerflow.execute([slow_square(i) for i in range(20)], settings=ledger_settings).counts[
        "cached"
    ] == 20


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    RUNS.clear()


def test_files_resolve_relative_to_the_project(ledger_settings: Settings, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    cwd = os.getcwd()
    os.chdir(other)
    try:
        report = ledgerflow.run(write_report("rel", "x"), settings=ledger_settings)
    finally:
        os.chdir(cwd)
    assert (ledger_settings.root / "results" / "rel.txt").read_text() == "x"
    assert report.path == "results/rel.txt"


@task
def report_all(n: int) -> list[int]:
    RUNS.append("report_all")
    return [cached(i) for i in range(n)]


def test_rerun_reaches_a_task_under_a_cached_caller(ledger_settings: Settings) -> None:
    ledgerflow.run(report_all(2), settings=ledger_settings)
    RUNS.clear()
    ledgerflow.run(report_all(2), settings=ledger_settings)
    assert RUNS == []
    plan = ledgerflow.run(report_all(2), settings=ledger_settings, rerun=["cached"], dry_run=True)
    assert [(p.status, p.reason) for p in plan] == [
        ("run", "asked to rerun (this task or one it calls)")
    ]
    ledgerflow.run(report_all(2), settings=ledger_settings, rerun=["cached"])
    assert sorted(RUNS) == ["cached", "cached", "report_all"]
