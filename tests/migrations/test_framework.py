"""The framework's ledger tables: shipped revisions, no drift, history, stamp, bad revisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledgerflow import migrations
from ledgerflow.db import Database
from ledgerflow.errors import MigrationError
from ledgerflow.ledger.schema import LEDGER_TABLES, LedgerBase
from ledgerflow.migrations.scripts import FRAMEWORK_BRANCH
from ledgerflow.testing.projects import make_project


@pytest.fixture
def project(tmp_path: Path, database_entry: dict[str, Any]) -> Any:
    return make_project(tmp_path, database_entry)


def _drift(settings: Any) -> list[Any]:
    database = Database(settings, role="admin")
    try:
        with database.engine().connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, type_, _: type_ != "table" or name.startswith("lf_"),
                },
            )
            return list(compare_metadata(context, LedgerBase.metadata))
    finally:
        database.dispose()


def test_ledger_migrations_match_the_models_and_go_down_and_up(project: Any, tables: Any) -> None:
    steps = migrations.upgrade(project)

    assert steps and {s.branch for s in steps} == {FRAMEWORK_BRANCH}
    assert set(LEDGER_TABLES) <= tables(project)
    assert _drift(project) == []
    assert migrations.check(project) == []

    down = migrations.downgrade(project, f"{FRAMEWORK_BRANCH}@base")
    assert [s.revision for s in down] == [s.revision for s in reversed(steps)]
    assert {s.direction for s in down} == {"down"}
    assert not set(LEDGER_TABLES) & tables(project)

    migrations.upgrade(project)
    assert _drift(project) == []
    assert migrations.upgrade(project) == []  # already at heads


def test_history_current_and_stamp(project: Any, tables: Any) -> None:
    before, *older = migrations.history(project)  # newest first
    assert before.branch == FRAMEWORK_BRANCH and before.is_head and not before.is_current
    assert all(not r.is_head and r.branch == FRAMEWORK_BRANCH for r in older)
    assert older == [] or before.down_revision == older[0].revision
    assert migrations.current(project) == {"default": []}

    migrations.upgrade(project)
    (now,) = migrations.current(project)["default"]
    assert (now.revision, now.is_head, now.is_current) == (before.revision, True, True)
    assert migrations.history(project)[0].is_current

    migrations.stamp(project, "base")
    assert migrations.current(project) == {"default": []}
    assert set(LEDGER_TABLES) <= tables(project)  # stamping runs nothing
    migrations.stamp(project, "heads")
    assert [r.revision for r in migrations.current(project)["default"]] == [before.revision]


def test_downgrading_past_the_ledger_base_changes_nothing(project: Any, tables: Any) -> None:
    migrations.upgrade(project)
    at = migrations.current(project)

    with pytest.raises(MigrationError) as error:
        migrations.downgrade(project, f"{FRAMEWORK_BRANCH}@-{len(migrations.history(project)) + 1}")

    message = str(error.value)
    assert "cannot downgrade database 'default'" in message and "nothing was changed" in message
    assert "\n" not in message
    assert migrations.current(project) == at
    assert set(LEDGER_TABLES) <= tables(project)


@pytest.mark.parametrize("call", ["upgrade", "downgrade", "stamp"])
def test_unknown_revision_is_a_clear_error(project: Any, call: str) -> None:
    migrations.upgrade(project)

    with pytest.raises(MigrationError) as error:
        if call == "upgrade":
            migrations.upgrade(project, "0badc0ffee00")
        else:
            getattr(migrations, call)(project, "0badc0ffee00")

    assert "0badc0ffee00" in str(error.value) and "\n" not in str(error.value)
    assert [r.revision for r in migrations.current(project)["default"]] != []
