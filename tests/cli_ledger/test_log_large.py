"""``ledgerflow log`` on a wide run: siblings of one task grouped, --depth, --limit, --expand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ledgerflow.testing.workload import LedgerWriter

from .conftest import Cli, Project

WIDE = 40  # summarize calls under main; 3 of them failed


@pytest.fixture
def wide_run(project: Project) -> str:
    """A run: main -> 40 summarize (3 failed, each with one child) + 2 report."""
    from ledgerflow.config import load_settings

    w = LedgerWriter(now=datetime.now(UTC) + timedelta(minutes=5), seed=4711)
    main_task, summarize, report, child = (w.task(n) for n in ("main", "summarize", "report", "child"))
    root = w.call(main_task, [w.value(WIDE)], w.value("done"))
    run = w.run("pipeline.main", status="failed", root_call=root, arguments={"n": WIDE})
    top = w.task_run(run, main_task, root, task_name="pipeline.main")
    for i in range(WIDE):
        failed = i in (5, 17, 33)
        call = w.call(summarize, [w.value(i)], w.value(i * 2), parent=root)
        started = w.now + timedelta(seconds=i)
        tr = w.task_run(run, summarize, None if failed else call, task_name="pipeline.summarize",
                        parent_id=top, status="failed" if failed else "done", started_at=started,
                        args_hash=w.args_hash(call), error=("ValueError", f"bad {i}") if failed else None)
        if failed:
            below = w.call(child, [w.value(f"c{i}")], w.value(f"r{i}"), parent=call)
            w.task_run(run, child, below, task_name="pipeline.child", parent_id=tr, started_at=started)
    for i in range(2):
        call = w.call(report, [w.value(f"report{i}")], w.value(f"out{i}"), parent=root)
        w.task_run(run, report, call, task_name="pipeline.report", parent_id=top,
                   started_at=w.now + timedelta(seconds=100 + i))
    w.write(load_settings(project.config))
    return run


def _json(cli: Cli, *args: str) -> dict:
    result = cli(*args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_siblings_of_one_task_are_one_line_with_failures_listed(cli: Cli, wide_run: str) -> None:
    result = cli("log", wide_run[:8])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) < 15, result.out  # not one line per task run
    assert any(f"pipeline.summarize × {WIDE}" in line and "37 done, 3 failed" in line for line in lines)
    assert sum("ValueError: bad" in line for line in lines) == 3  # failures still listed
    assert sum("pipeline.report(" in line for line in lines) == 2  # few siblings: one line each
    assert "--expand" in lines[-1] and f"of {1 + WIDE + 3 + 2} task runs" in lines[-1]

    data = _json(cli, "log", wide_run, "--json")
    assert data["total"] == 1 + WIDE + 3 + 2 and data["truncated"] is False
    (top,) = data["task_runs"]
    group = next(c for c in top["children"] if c["kind"] == "task_group")
    assert group["task_name"] == "pipeline.summarize" and group["count"] == WIDE
    assert group["counts"] == {"done": 37, "failed": 3} and group["descendants"] == 3
    assert [tr["status"] for tr in group["task_runs"]] == ["failed"] * 3


def test_expand_depth_and_limit(cli: Cli, wide_run: str) -> None:
    everything = cli("log", wide_run, "--all")
    assert everything.code == 0, everything.err
    assert sum("pipeline.summarize(" in line for line in everything.out.splitlines()) == WIDE
    assert sum("pipeline.child(" in line for line in everything.out.splitlines()) == 3

    top_only = _json(cli, "log", wide_run, "--depth", "1", "--json")
    (top,) = top_only["task_runs"]
    assert top["children"] == [] and top["hidden"] == WIDE + 3 + 2 and top_only["shown"] == 1

    limited = _json(cli, "log", wide_run, "--expand", "--limit", "10", "--json")
    assert limited["shown"] == 10 and limited["truncated"] is True
    assert "the limit was reached" in cli("log", wide_run, "--expand", "--limit", "10").out
