"""The statuses of task runs and runs are defined once (ledgerflow.ledger.status)."""

from __future__ import annotations

import ast
from pathlib import Path

from ledgerflow.cli.output import STATUS_STYLES
from ledgerflow.cli.progress import STATES
from ledgerflow.ledger import status
from ledgerflow.ledger.schema import Run, TaskRun

PACKAGE = Path(status.__file__).resolve().parents[1]


def test_a_run_ends_by_its_task_runs() -> None:
    assert status.run_status({"done": 3, "cached": 1}) == "done"
    assert status.run_status({"done": 3, "skipped": 1}) == "failed"
    assert status.run_status({"done": 3, "failed": 1}) == "failed"
    assert status.run_status({"failed": 1}, interrupted=True) == "interrupted"
    assert set(status.RUN_STATUSES) < set(status.TASK_RUN_STATUSES)
    assert set(status.TASK_RUN_STATUSES) == status.FINAL | status.UNFINISHED
    assert not status.FINAL & status.UNFINISHED


def test_every_status_is_shown_and_fits_its_column() -> None:
    assert sorted(status.SHOWN_ORDER) == sorted(status.TASK_RUN_STATUSES)
    assert STATES == status.SHOWN_ORDER
    assert set(status.TASK_RUN_STATUSES) <= set(STATUS_STYLES)
    for model in (Run, TaskRun):
        width = model.__table__.c.status.type.length
        assert max(map(len, status.TASK_RUN_STATUSES)) <= width


def test_no_other_module_lists_the_statuses() -> None:
    """A tuple, list or set of every task-run (or run) status written anywhere else is a
    second definition that will drift."""
    whole = [set(status.TASK_RUN_STATUSES), set(status.RUN_STATUSES)]
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path == Path(status.__file__).resolve() or "versions" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                items = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if len(items) == len(node.elts) and items in whole:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, "statuses listed outside ledgerflow.ledger.status: " + ", ".join(found)
