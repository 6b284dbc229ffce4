"""Fixtures for the record commands: a migrated project with a generated ledger, a CLI runner."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import migrations
from ledgerflow.cli.main import main
from ledgerflow.config.settings import Settings
from ledgerflow.testing.projects import make_project
from ledgerflow.testing.workload import Workload, generate_workload


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Project:
    settings: Settings
    workload: Workload

    @property
    def config(self) -> Path:
        assert self.settings.path is not None
        return self.settings.path


class TerminalInput(io.StringIO):
    """Typed answers on a stdin that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli(config, "export", ...)`` runs ``ledgerflow --config CONFIG ...`` like the shell."""

    def run(config: Path, *args: str, answer: str | None = None) -> Result:
        capsys.readouterr()
        if answer is not None:
            monkeypatch.setattr("sys.stdin", TerminalInput(answer))
        try:
            main(["--config", str(config), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def migrated(root: Path, entry: dict[str, Any], **options: Any) -> Settings:
    settings = make_project(root, entry, **options)
    migrations.upgrade(settings)
    return settings


@pytest.fixture
def project(
    tmp_path: Path, migrated_database_entry: dict[str, Any], fresh_models: None
) -> Project:
    """A project (SQLite, then PostgreSQL) with a generated ledger and a second bind 'spare'.

    ``fresh_models`` closes the connections the schema checks keep, before the database goes.
    """
    spare = {"dialect": "sqlite", "path": str(tmp_path / "spare.db")}
    settings = make_project(
        tmp_path / "project", migrated_database_entry, databases={"spare": spare}
    )
    migrated(tmp_path / "spare", spare)
    return Project(settings, generate_workload(settings, calls=100, depth=4, seed=1))


@pytest.fixture
def empty(tmp_path: Path) -> Settings:
    """Another migrated project with an empty SQLite ledger."""
    return migrated(tmp_path / "empty", {"dialect": "sqlite", "path": str(tmp_path / "empty.db")})
