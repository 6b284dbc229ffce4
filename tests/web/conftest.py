"""Fixtures for the dashboard: a migrated project holding the example ledger plus one run
whose names, arguments, tags, logs and exception carry HTML and script payloads."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.testing.plugin import ci_enabled

if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("jinja2") is None:
    if ci_enabled():
        pytest.fail("the web extra is not installed (pip install -e '.[test]')", pytrace=False)
    pytest.skip("the web extra is not installed (pip install -e '.[test]')", allow_module_level=True)

from starlette.testclient import TestClient

from ledgerflow import migrations
from ledgerflow.config.settings import Settings
from ledgerflow.testing.projects import make_project
from ledgerflow.testing.workload import ExampleLedger, LedgerWriter, write_example_ledger
from ledgerflow.web.app import create_app

#: Markup that must reach the page as text: if any of it runs, window.__pwned is set.
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '"><img src=x onerror="window.__pwned=1">'
HOSTILE_RUN = "eeee0006" + "0" * 24


@dataclass
class Board:
    root: Path
    settings: Settings
    example: ExampleLedger
    hostile_task_run: str


def write_hostile_run(settings: Settings, now: Any) -> str:
    """A failed run whose every user-supplied text is an HTML/script payload; its task run id."""
    writer = LedgerWriter(now=now, seed=11)
    task = writer.task(f"evil{SCRIPT}", ("x",))
    arg = writer.value(IMG, preview=IMG)
    args = writer.arguments({f"x{SCRIPT}": arg})
    at = now - timedelta(minutes=30)
    writer.run(f"pipeline.{SCRIPT}", fixed_id=HOSTILE_RUN, status="failed", started_at=at, seconds=2,
               arguments={"x": IMG})
    tr = writer.task_run(HOSTILE_RUN, task, None, status="failed", task_name=f"pipeline.evil{SCRIPT}",
                         args_hash=args, started_at=at, seconds=1.0, error=("ValueError", f"bad {SCRIPT} {IMG}"))
    writer.log(HOSTILE_RUN, tr, f"log {SCRIPT} {IMG}", level="ERROR", at=at)
    writer.tag(HOSTILE_RUN, "run", "note", IMG)
    writer.tag(tr, "task_run", "note", SCRIPT)
    writer.write(settings)
    return tr


@pytest.fixture
def board(tmp_path: Path, database_entry: dict[str, Any]) -> Board:
    settings = make_project(tmp_path / "project", database_entry)
    migrations.upgrade(settings)
    example = write_example_ledger(settings)
    hostile = write_hostile_run(settings, example.now)
    return Board(tmp_path / "project", settings, example, hostile)


@pytest.fixture
def client(board: Board) -> Iterator[TestClient]:
    app = create_app(board.settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.state.reader.close()
