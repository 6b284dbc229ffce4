"""``ledgerflow runs`` over the database driver alone: the same records as the SQLAlchemy
path for every filter, on SQLite and PostgreSQL, and the SQLAlchemy path whenever the
ledger needs more than a read (a dead run to mark, a schema to refuse)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ledgerflow import api
from ledgerflow.config import load_settings
from ledgerflow.db.database import Database
from ledgerflow.errors import SchemaOutdatedError, UsageError
from ledgerflow.provenance import fastlist
from ledgerflow.provenance.reader import list_project_runs

from .conftest import Project

FILTERS: list[dict[str, Any]] = [
    {},
    {"limit": None},
    {"limit": 2},
    {"limit": 2, "offset": 1},
    {"limit": None, "offset": 2},
    {"limit": 0},
    {"status": "done"},
    {"status": "failed,running"},
    {"status": ["done", "interrupted"]},
    {"task": "main"},
    {"task": "call_variants"},
    {"task": "call_*"},
    {"task": "ali?n"},
    {"task": "no_such_task"},
    {"tag": ["env=prod"]},
    {"tag": ["env"]},
    {"tag": ["env=dev", "env"]},
    {"since": "2d"},
    {"until": "1d"},
    {"since": "5d", "until": "1h"},
    {"status": "done", "task": "align", "since": "4d"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[repr(f) for f in FILTERS])
def test_the_driver_path_lists_what_the_sqlalchemy_path_lists(project: Project, filters: dict[str, Any]) -> None:
    settings = load_settings(project.config)
    fast = fastlist.list_runs(settings, **filters)
    assert fast is not None, "a current ledger with no dead run is listed over the driver"
    slow = list_project_runs(settings, **filters)
    assert [r.to_json() for r in fast] == [r.to_json() for r in slow]


def test_the_listing_is_not_empty_and_carries_counts_and_tags(project: Project) -> None:
    found = fastlist.list_runs(load_settings(project.config), limit=None)
    assert found is not None and len(found) == 5
    by_id = {r.id[:4]: r for r in found}
    assert by_id["aaaa"].tags and by_id["aaaa"].counts
    assert all(r.started_at is not None and r.started_at.tzinfo is not None for r in found)


@pytest.mark.parametrize("filters", [{"status": "nope"}, {"limit": -1}, {"since": "yesterday-ish"}])
def test_bad_filters_are_the_same_usage_errors(project: Project, filters: dict[str, Any]) -> None:
    settings = load_settings(project.config)
    with pytest.raises(UsageError) as fast:
        fastlist.list_runs(settings, **filters)
    with pytest.raises(UsageError) as slow:
        list_project_runs(settings, **filters)
    assert str(fast.value) == str(slow.value)


def test_a_dead_run_is_left_to_the_path_that_marks_it(project: Project) -> None:
    """The example ledger's ``running`` run has a live heartbeat; once its process is gone
    (a pid that does not exist on this host), the driver path steps aside and ``runs``
    marks it ``interrupted`` as before."""
    from sqlalchemy import update

    from ledgerflow.ledger import tables as t

    settings = load_settings(project.config)
    with Database(settings) as db, db.engine().begin() as conn:
        conn.execute(update(t.run).where(t.run.c.status == "running")
                     .values(host=os.uname().nodename, pid=_dead_pid()))
    assert fastlist.list_runs(settings) is None
    found = api.runs(settings, limit=None)
    assert "running" not in {r.status for r in found}
    assert fastlist.list_runs(settings) is not None  # nothing left to mark


def test_an_outdated_ledger_is_refused_as_before(project: Project) -> None:
    from sqlalchemy import text

    settings = load_settings(project.config)
    with Database(settings, "admin") as db, db.engine().begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    assert fastlist.list_runs(settings) is None
    with pytest.raises(SchemaOutdatedError):
        api.runs(settings)


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1
