"""What a new user hits with ``init``, ``db`` and the global options, each fixed for good."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from ledgerflow.config import load_settings
from ledgerflow.db import Database


def _rows(root: Path, table: str) -> int:
    with Database(load_settings(root / "ledgerflow.yml"), role="admin") as db:
        with db.engine().connect() as connection:
            if not sa.inspect(connection).has_table(table):
                return -1
            return int(connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def _add_measurements(root: Path, n: int) -> None:
    with Database(load_settings(root / "ledgerflow.yml"), role="admin") as db:
        with db.engine().begin() as connection:
            for i in range(n):
                connection.execute(
                    sa.text("INSERT INTO measurement (sample, quantity, value) VALUES (:s, 't', 1)"),
                    {"s": f"S{i}"},
                )


def test_a_new_project_is_in_sync_after_upgrade(
    ledgerflow: Callable[..., Any], new_project: Callable[..., Path], database_entry: dict[str, Any]
) -> None:
    new_project(database_entry)
    assert ledgerflow("db", "upgrade").exit_code == 0
    checked = ledgerflow("db", "check")
    assert checked.exit_code == 0, checked.output
    as_json = ledgerflow("db", "check", "--json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == {"in_sync": True, "binds": ["default"], "differences": []}


def test_db_check_json_reports_differences_with_exit_1(
    ledgerflow: Callable[..., Any], new_project: Callable[..., Path], tmp_path: Path
) -> None:
    new_project({"dialect": "sqlite", "path": str(tmp_path / "ledger.db")})
    result = ledgerflow("db", "check", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["in_sync"] is False
    assert any("measurement" in line or "behind" in line or "no revision" in line
               for line in data["differences"]), data


@pytest.mark.parametrize("name", ["json", "logging", "email.parser", "click"])
def test_init_refuses_a_plugin_name_that_is_another_module(
    ledgerflow: Callable[..., Any], tmp_path: Path, name: str
) -> None:
    result = ledgerflow("init", str(tmp_path / "p"), "--plugin", name)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert f"plugin name {name!r} is already" in line and "pick another name" in line
    assert not (tmp_path / "p").exists()


def test_a_configured_plugin_that_resolves_elsewhere_is_refused(
    ledgerflow: Callable[..., Any], new_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = new_project({"dialect": "sqlite", "path": str(tmp_path / "ledger.db")})
    (root / "json").mkdir()
    (root / "json" / "__init__.py").write_text("")
    config = root / "ledgerflow.yml"
    data = yaml.safe_load(config.read_text())
    data["plugins"] = ["json"]
    config.write_text(yaml.safe_dump(data))
    for command in (("db", "check"), ("db", "make-migrations", "--plugin", "json", "-m", "x")):
        result = ledgerflow(*command)
        assert result.exit_code == 3, result.output
        [line] = result.stderr.strip().splitlines()
        assert "plugin 'json'" in line and "resolves to another module" in line


def test_downgrade_that_drops_rows_asks_first(
    ledgerflow: Callable[..., Any], new_project: Callable[..., Path], database_entry: dict[str, Any]
) -> None:
    root = new_project(database_entry)
    assert ledgerflow("db", "upgrade").exit_code == 0
    _add_measurements(root, 3)

    dry = ledgerflow("db", "downgrade", "pipeline@base", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would drop table measurement (3 rows)" in dry.stdout
    assert "nothing was changed" in dry.stdout
    assert _rows(root, "measurement") == 3

    refused = ledgerflow("db", "downgrade", "pipeline@base")  # stdin is not a terminal
    assert refused.exit_code == 2, refused.output
    [line] = refused.stderr.strip().splitlines()
    assert "measurement (3 rows)" in line and "--yes" in line and "--dry-run" in line
    assert _rows(root, "measurement") == 3

    done = ledgerflow("db", "downgrade", "pipeline@base", "--yes")
    assert done.exit_code == 0, done.output
    assert _rows(root, "measurement") == -1


def test_downgrade_of_empty_tables_needs_no_confirmation(
    ledgerflow: Callable[..., Any], new_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = new_project({"dialect": "sqlite", "path": str(tmp_path / "ledger.db")})
    assert ledgerflow("db", "upgrade").exit_code == 0
    result = ledgerflow("db", "downgrade", "pipeline@base")
    assert result.exit_code == 0, result.output
    assert _rows(root, "measurement") == -1


def test_make_migrations_warns_of_a_not_null_column_on_a_table_with_rows(
    ledgerflow: Callable[..., Any],
    new_project: Callable[..., Path],
    database_entry: dict[str, Any],
    forget: Callable[[Path], None],
) -> None:
    root = new_project(database_entry)
    assert ledgerflow("db", "upgrade").exit_code == 0
    models = root / "pipeline" / "models.py"
    original = models.read_text()
    models.write_text(original.replace(
        "    unit: Mapped",
        "    site: Mapped[str] = mapped_column(String(20))\n"
        "    note: Mapped[str] = mapped_column(String(20), server_default='none')\n"
        "    unit: Mapped",
    ))
    forget(root)
    empty = ledgerflow("db", "make-migrations", "--plugin", "pipeline", "-m", "site")
    assert empty.exit_code == 0 and "Warning" not in empty.stderr  # no rows: nothing to fail
    for path in (root / "pipeline" / "migrations").glob("*_site.py"):
        path.unlink()

    _add_measurements(root, 2)
    made = ledgerflow("db", "make-migrations", "--plugin", "pipeline", "-m", "site")
    assert made.exit_code == 0, made.output
    warnings = [line for line in made.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1, made.stderr
    assert "measurement.site is NOT NULL without a default" in warnings[0]
    assert "holds 2 row(s)" in warnings[0]


def test_config_from_the_environment_is_named_as_such(
    ledgerflow: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEDGERFLOW_CONFIG", "/nope.yml")
    result = ledgerflow("runs")
    assert result.exit_code == 3
    assert "(from $LEDGERFLOW_CONFIG)" in result.stderr and "from --config" not in result.stderr
    explicit = ledgerflow("--config", "/nope.yml", "runs")
    assert "from --config" in explicit.stderr


def test_debug_does_not_tell_to_run_with_debug(
    ledgerflow: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_tasks.py").write_text("raise RuntimeError('boom')\n")
    plain = ledgerflow("run", "broken_tasks.py:main")
    assert plain.exit_code == 3 and "run with --debug" in plain.stderr
    debug = ledgerflow("--debug", "run", "broken_tasks.py:main")
    assert debug.exit_code == 3
    assert "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr
    assert "--debug" not in debug.stderr.strip().splitlines()[-1]

