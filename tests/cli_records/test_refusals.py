"""What the record commands refuse, in one line: a ledger newer than the library, a
read-only ledger (which can still be read), a database that will not let us read it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.migrations.heads import dispose_engines
from ledgerflow.migrations.scripts import VERSION_TABLE

from .conftest import Cli, Project, migrated


def scalar(settings: Settings, sql: str, bind: str = "default") -> Any:
    database = Database(settings)
    try:
        with database.engine(bind).connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        database.dispose()


def test_writing_commands_refuse_a_newer_ledger(cli: Cli, project: Project, tmp_path: Path) -> None:
    exported = tmp_path / "all.jsonl"
    assert cli(project.config, "export", "-o", str(exported)).code == 0
    database = Database(project.settings, role="admin")
    with database.engine().begin() as conn:  # a revision only a newer ledgerflow knows
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('fffffffffff1')"))
    database.dispose()
    runs = scalar(project.settings, "SELECT count(*) FROM lf_run")
    for args in (("prune", "--older-than", "0d", "--yes"), ("cache", "clear", "--yes"),
                 ("import", str(exported)), ("pull", "spare"), ("push", "spare")):
        refused = cli(project.config, *args)
        assert refused.code == 5, (args, refused)
        assert "migrated by a newer ledgerflow" in refused.err and refused.err.count("\n") == 1
        assert "Traceback" not in refused.err
    assert scalar(project.settings, "SELECT count(*) FROM lf_run") == runs  # nothing deleted


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` and its files may be read, not written (even by root: immutable)."""
    dispose_engines()  # the last connection checkpoints the WAL and removes it
    paths = [folder, *folder.iterdir()]
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", *map(str, paths)],
                                            capture_output=True).returncode != 0:
            pytest.skip("running as root and the file system has no immutable flag")
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", *map(str, paths)], check=True)
        return
    modes = {path: path.stat().st_mode for path in paths}
    for path in paths:
        path.chmod(modes[path] & ~0o222)
    try:
        yield
    finally:
        for path in paths:
            path.chmod(modes[path])


@pytest.fixture
def sqlite_project(tmp_path: Path, cli: Cli) -> Settings:
    """A SQLite project in its own folder, with a run whose process died (still 'running')."""
    from ledgerflow.testing.workload import write_example_ledger

    folder = tmp_path / "ro"
    settings = migrated(folder, {"dialect": "sqlite", "path": str(folder / "ledgerflow.db")})
    write_example_ledger(settings)
    database = Database(settings)
    with database.engine().begin() as conn:
        conn.execute(text("UPDATE lf_run SET heartbeat_at = '2020-01-01 00:00:00' WHERE status = 'running'"))
    database.dispose()
    return settings


def test_a_read_only_ledger_can_be_read(cli: Cli, sqlite_project: Settings) -> None:
    config = sqlite_project.path
    assert config is not None
    running = scalar(sqlite_project, "SELECT id FROM lf_run WHERE status = 'running'")
    with read_only(config.parent):
        runs = cli(config, "runs", "--json")
        assert runs.code == 0, runs.err
        # the dead run stays as it is: marking it interrupted would be a write
        assert {r["id"]: r["status"] for r in json.loads(runs.out)}[running] == "running"
        for args in (("show", running[:8]), ("log", running[:8]), ("query", "--status", "failed"),
                     ("cache", "list"), ("export", "-o", "-"), ("dataflow", "out/s1.vcf")):
            result = cli(config, *args)
            assert result.code == 0, (args, result.err)
        for args in (("prune", "--older-than", "0d", "--yes"), ("cache", "clear", "--yes"),
                     ("tag", running[:8], "a=b")):
            refused = cli(config, *args)
            assert refused.code == 4, (args, refused)
            assert "read" in refused.err and refused.err.count("\n") == 1, refused.err
    # writable again: the next reader marks the dead run
    after = json.loads(cli(config, "runs", "--json").out)
    assert {r["id"]: r["status"] for r in after}[running] == "interrupted"


def test_pull_without_select_is_one_line(cli: Cli, tmp_path: Path, database_entry: dict[str, Any],
                                         fresh_models: None) -> None:
    if database_entry["dialect"] != "postgresql":
        pytest.skip("privileges are PostgreSQL's")
    from ledgerflow.testing.workload import write_example_ledger

    team = migrated(tmp_path / "team", database_entry)
    write_example_ledger(team)
    user = database_entry["user"].split(":")[0]
    admin = Database(team, role="admin")
    with admin.engine().begin() as conn:
        conn.execute(text(f'REVOKE SELECT ON lf_run FROM "{user}"'))
    admin.dispose()
    laptop = migrated(tmp_path / "laptop", {"dialect": "sqlite", "path": str(tmp_path / "laptop.db")},
                      databases={"team": database_entry})
    assert laptop.path is not None
    pulled = cli(laptop.path, "pull", "team")
    assert pulled.code == 4, pulled
    assert pulled.err.startswith("Error: database 'team' (") and pulled.err.count("\n") == 1
    assert "permission denied" in pulled.err and "SELECT" in pulled.err
    assert "Traceback" not in pulled.err and database_entry["user"].split(":")[1] not in pulled.err
