"""Removing or overwriting history is the admin's (real PostgreSQL server).

``prune``, ``cache clear`` and an ``import`` that would overwrite another role's runs
connect as the admin when the project names one; with the user role only they stop with
one line that says what is missing, change nothing, and exit non-zero. The user role
removes only the tags it added and those of its own runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.testing.projects import make_project
from ledgerflow.testing.workload import ExampleLedger, write_example_ledger

from .conftest import Cli

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_dialect", ["postgresql"]),
]

FRESH_RUN = "eeee0006" + "0" * 24


def scalar(settings: Settings, sql: str) -> Any:
    database = Database(settings, role="admin")
    try:
        with database.engine().connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        database.dispose()


def projects(tmp_path: Path, entry: dict[str, Any]) -> tuple[Settings, Settings]:
    """The same ledger configured with both roles, and with the user role only."""
    full = make_project(tmp_path / "full", entry)
    user_only = make_project(tmp_path / "user", {k: v for k, v in entry.items() if k != "admin"})
    return full, user_only


@pytest.fixture
def team(tmp_path: Path, migrated_database_entry: dict[str, Any]) -> tuple[Settings, Settings, ExampleLedger]:
    full, user_only = projects(tmp_path, migrated_database_entry)
    database = Database(full, role="admin")  # the records are another role's
    try:
        example = write_example_ledger(database)
        with database.engine().begin() as conn:
            conn.execute(text(
                "INSERT INTO lf_cache_entry (task_hash, args_hash, call_hash, value_hash, created_at) "
                "SELECT task_hash, args_hash, hash, value_hash, now() FROM lf_call ON CONFLICT DO NOTHING"
            ))
    finally:
        database.dispose()
    return full, user_only, example


def one_line(result: Any, *words: str) -> None:
    assert result.code == 4, result
    assert result.err.startswith("Error: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in result.err, result.err


@pytest.mark.parametrize(
    ("args", "operation", "table"),
    [
        (("prune", "--older-than", "0d", "--yes"), "prune", "lf_run"),
        (("cache", "clear", "--yes"), "cache clear", "lf_cache_entry"),
    ],
)
def test_an_admin_operation_as_the_user_role_is_one_line_and_changes_nothing(
    cli: Cli, team: tuple[Settings, Settings, ExampleLedger], migrated_database_entry: dict[str, Any],
    args: tuple[str, ...], operation: str, table: str,
) -> None:
    full, user_only, _ = team
    before = scalar(full, f"SELECT count(*) FROM {table}")
    assert before > 0
    user = migrated_database_entry["user"].split(":")[0]
    refused = cli(user_only.path, *args)
    one_line(refused, f"{operation} needs the admin role", f"configured with user '{user}' only",
             "admin:", str(user_only.path))
    assert migrated_database_entry["user"].split(":")[1] not in refused.err
    assert scalar(full, f"SELECT count(*) FROM {table}") == before

    done = cli(full.path, *args)  # the admin is configured: the same command connects as the admin
    assert done.code == 0, done
    assert scalar(full, f"SELECT count(*) FROM {table}") < before


def _ended_copy(export: Path, run_id: str) -> Path:
    """The export with run ``run_id`` ended (``done``) where the ledger still has it running."""
    lines = []
    for line in export.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == "run" and record["data"]["id"] == run_id:
            record["data"]["status"] = "done"
            record["data"]["ended_at"] = record["data"]["started_at"]
        lines.append(json.dumps(record))
    ended = export.with_name("ended.jsonl")
    ended.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ended


def test_an_import_that_would_overwrite_another_roles_run_is_the_admins(
    cli: Cli, team: tuple[Settings, Settings, ExampleLedger], tmp_path: Path
) -> None:
    full, user_only, _ = team
    database = Database(full, role="admin")
    try:
        with database.engine().begin() as conn:  # a run of the admin's, alive (fresh heartbeat)
            conn.execute(text(
                "INSERT INTO lf_run (id, status, entry_task, started_at, heartbeat_at) "
                f"VALUES ('{FRESH_RUN}', 'running', 'pipeline.main', now(), now())"
            ))
    finally:
        database.dispose()
    export = tmp_path / "all.jsonl"
    assert cli(full.path, "export", "-o", str(export)).code == 0
    ended = _ended_copy(export, FRESH_RUN)

    refused = cli(user_only.path, "import", str(ended))
    one_line(refused, "needs the admin role", "another role's runs", "admin:")
    assert scalar(full, f"SELECT status FROM lf_run WHERE id = '{FRESH_RUN}'") == "running"

    assert cli(user_only.path, "import", str(export)).code == 0  # adding nothing new is fine
    imported = cli(full.path, "import", str(ended), "--json")
    assert imported.code == 0, imported
    assert json.loads(imported.out)["updated"]["run"] == 1
    assert scalar(full, f"SELECT status FROM lf_run WHERE id = '{FRESH_RUN}'") == "done"


def test_the_user_role_removes_its_own_tags_only(
    cli: Cli, team: tuple[Settings, Settings, ExampleLedger]
) -> None:
    full, user_only, example = team
    old = example.runs["old"][:8]
    refused = cli(user_only.path, "tag", old, "env", "--remove")
    one_line(refused, "may not remove tags from run", "only the tags it added")
    assert scalar(full, f"SELECT count(*) FROM lf_tag WHERE entity_id = '{example.runs['old']}'") == 1

    assert cli(user_only.path, "tag", old, "checked=yes").code == 0
    removed = cli(user_only.path, "tag", old, "checked", "--remove", "--json")
    assert removed.code == 0, removed
    assert json.loads(removed.out)["removed"] == 1


def _new_value(export: Path, digest: str) -> Path:
    """An export file holding one value record the ledger lacks (hash ``digest``)."""
    for line in export.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == "value" and record["data"]["store_key"] is None:
            record["key"] = record["data"]["hash"] = digest
            one = export.with_name(f"{digest[:4]}.jsonl")
            one.write_text(json.dumps(record) + "\n", encoding="utf-8")
            return one
    raise AssertionError("no inline value in the export")


def test_records_the_admin_imports_are_not_the_admins(
    cli: Cli, team: tuple[Settings, Settings, ExampleLedger], tmp_path: Path,
    migrated_database_entry: dict[str, Any],
) -> None:
    """Everyone trusts the admin's pickles: an import must not make foreign records the
    admin's. The user role cannot borrow the switch that keeps them unknown."""
    full, user_only, _ = team
    export = tmp_path / "all.jsonl"
    assert cli(full.path, "export", "-o", str(export)).code == 0
    assert cli(full.path, "import", str(_new_value(export, "1" * 40))).code == 0
    assert cli(user_only.path, "import", str(_new_value(export, "2" * 40))).code == 0
    writers = {
        digest: scalar(full, f"SELECT writer FROM lf_value WHERE hash = '{digest}'")
        for digest in ("1" * 40, "2" * 40)
    }
    user = migrated_database_entry["user"].split(":")[0]
    assert writers == {"1" * 40: None, "2" * 40: user}

    admin = migrated_database_entry["admin"].split(":")[0]
    database = Database(user_only)
    try:
        with database.engine().begin() as conn:
            conn.execute(text("SELECT set_config('ledgerflow.keep_writer', 'on', true)"))
            conn.execute(text(
                "INSERT INTO lf_value (hash, type_name, format, created_at, writer) "
                f"VALUES ('{'3' * 40}', 'int', 'json', now(), '{admin}')"
            ))
    finally:
        database.dispose()
    assert scalar(full, f"SELECT writer FROM lf_value WHERE hash = '{'3' * 40}'") == user
