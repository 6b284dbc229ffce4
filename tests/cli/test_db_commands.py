"""``ledgerflow db ...`` on a project made by ``ledgerflow init``, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledgerflow.config import load_settings
from ledgerflow.db import Database


def _revision_files(root: Path) -> list[Path]:
    return sorted((root / "pipeline" / "migrations").glob("*.py"))


def _columns(root: Path, table: str) -> set[str]:
    with Database(load_settings(root / "ledgerflow.yml"), role="admin") as db:
        inspector = sa.inspect(db.engine())
        if not inspector.has_table(table):
            return set()
        return {c["name"] for c in inspector.get_columns(table)}


def test_db_workflow(
    ledgerflow: Callable[..., Any],
    new_project: Callable[..., Path],
    database_entry: dict[str, Any],
    forget: Callable[[Path], None],
) -> None:
    root = new_project(database_entry)

    upgraded = ledgerflow("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.stdout.startswith("Upgrading 'default' (")
    assert "] ledgerflow " in upgraded.stdout and "Done: " in upgraded.stdout
    assert "Nothing to upgrade" in ledgerflow("db", "upgrade").stdout

    [first_file] = _revision_files(root)  # shipped by init: the sample model's table
    first = first_file.name.split("_")[3]
    assert f"-> [default] pipeline {first}  add measurement" in upgraded.stdout
    fresh = ledgerflow("db", "check")
    assert fresh.exit_code == 0 and "in sync" in fresh.stdout, fresh.output

    models = root / "pipeline" / "models.py"
    models.write_text(models.read_text().replace(
        "    unit: Mapped", "    note: Mapped[str | None] = mapped_column(String(200))\n    unit: Mapped"
    ))
    forget(root)
    pending_models = ledgerflow("db", "check")
    assert pending_models.exit_code == 1
    assert "add column measurement.note" in pending_models.stdout

    made = ledgerflow("db", "make-migrations", "--plugin", "pipeline", "-m", "add note")
    assert made.exit_code == 0, made.output
    [revision_file] = [p for p in _revision_files(root) if p != first_file]
    assert f"Wrote pipeline/migrations/{revision_file.name}" in made.stdout
    assert "  - add column measurement.note (VARCHAR(200) NULL)" in made.stdout
    assert "Warning" not in made.stderr
    revision = re.search(r"revision ([0-9a-f]{12}), branch pipeline", made.stdout)
    assert revision is not None

    not_applied = ledgerflow("db", "check")
    assert not_applied.exit_code == 1 and revision[1] in not_applied.stdout

    applied = ledgerflow("db", "upgrade", "heads")
    assert applied.exit_code == 0
    assert f"-> [default] pipeline {revision[1]}  add note" in applied.stdout
    assert {"id", "sample", "unit", "value", "note"} <= _columns(root, "measurement")

    in_sync = ledgerflow("db", "check")
    assert in_sync.exit_code == 0 and "in sync" in in_sync.stdout

    current = json.loads(ledgerflow("db", "current", "--json").stdout)
    branches = {info["branch"]: info for info in current["default"]}
    assert branches["pipeline"]["revision"] == revision[1]
    assert branches["pipeline"]["is_head"] and "ledgerflow" in branches
    assert "pipeline" in ledgerflow("db", "current").stdout

    history = json.loads(ledgerflow("db", "history", "--json").stdout)
    ours = [info for info in history if info["branch"] == "pipeline"]
    assert [(i["revision"], i["is_current"], i["down_revision"]) for i in ours] == [
        (revision[1], True, first), (first, False, None)
    ]
    table = ledgerflow("db", "history", "--bind", "default").stdout
    assert revision[1] in table and "add note" in table

    models.write_text(models.read_text().replace("    unit: Mapped", "    unit_name: Mapped"))
    forget(root)
    renamed = ledgerflow("db", "make-migrations", "--plugin", "pipeline", "-m", "rename unit")
    assert renamed.exit_code == 0, renamed.output
    assert "renamed column measurement.unit -> measurement.unit_name (data kept)" in renamed.stdout
    assert ledgerflow("db", "upgrade").exit_code == 0
    assert {"unit_name", "sample", "value"} <= _columns(root, "measurement")
    assert "unit" not in _columns(root, "measurement")

    down = ledgerflow("db", "downgrade", "pipeline@base")
    assert down.exit_code == 0, down.output
    assert re.search(r"<- \[default\] pipeline [0-9a-f]{12}  rename unit", down.stdout)
    assert "Done: 3 migrations reverted." in down.stdout
    assert _columns(root, "measurement") == set()
    now = json.loads(ledgerflow("db", "current", "--json").stdout)["default"]
    assert [info["branch"] for info in now] == ["ledgerflow"]

    stamped = ledgerflow("db", "stamp", revision[1])
    assert stamped.exit_code == 0 and f"at {revision[1]}" in stamped.stdout
    now = json.loads(ledgerflow("db", "current", "--json").stdout)["default"]
    assert {info["branch"]: info["revision"] for info in now}["pipeline"] == revision[1]
    assert _columns(root, "measurement") == set()  # stamped, not run


def test_make_migrations_without_renames(
    ledgerflow: Callable[..., Any],
    new_project: Callable[..., Path],
    database_entry: dict[str, Any],
    forget: Callable[[Path], None],
) -> None:
    root = new_project(database_entry)
    ledgerflow("db", "upgrade")
    models = root / "pipeline" / "models.py"
    models.write_text(models.read_text().replace("    unit: Mapped", "    unit_name: Mapped"))
    forget(root)
    result = ledgerflow(
        "db", "make-migrations", "--plugin", "pipeline", "-m", "drop and add", "--no-renames"
    )
    assert result.exit_code == 0, result.output
    assert "renamed" not in result.stdout
    assert "add column measurement.unit_name" in result.stdout
    assert "drop column measurement.unit" in result.stdout

    forget(root)
    nothing = ledgerflow("db", "upgrade")
    assert nothing.exit_code == 0
    again = ledgerflow("db", "make-migrations", "--plugin", "pipeline", "-m", "nothing")
    assert again.exit_code == 0 and "nothing written" in again.stdout
    assert len(_revision_files(root)) == 2


def test_db_errors_are_one_line(
    ledgerflow: Callable[..., Any], new_project: Callable[..., Path], database_entry: dict[str, Any]
) -> None:
    new_project(database_entry)
    cases = {
        ("db", "upgrade", "--bind", "nope"): (3, "nope"),
        ("db", "downgrade", "zzz"): (5, "zzz"),
        ("db", "make-migrations", "--plugin", "other", "-m", "x"): (2, "other"),
        ("db", "stamp", "abc", "--bind", "nope"): (3, "nope"),
    }
    for args, (code, word) in cases.items():
        result = ledgerflow(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
        assert word in result.stderr
        assert "Traceback" not in result.output
    for secret in ("admin", "user"):
        credentials = database_entry.get(secret, "")
        if ":" in credentials:
            assert credentials.split(":", 1)[1] not in ledgerflow("db", "downgrade", "zz").output


def test_upgrade_without_admin_says_what_is_missing(
    ledgerflow: Callable[..., Any], new_project: Callable[..., Path], pg_database: Any
) -> None:
    entry = pg_database.config_entry()
    del entry["admin"]
    new_project(entry)
    result = ledgerflow("db", "upgrade")
    assert result.exit_code == 5, result.output
    assert "databases.default.admin is not set" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert pg_database.user_password not in result.output
