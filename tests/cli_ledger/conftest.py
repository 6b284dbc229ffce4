"""Fixtures for the ledger-reading commands: a migrated project holding the example ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.cli.main import main
from ledgerflow.testing.projects import make_project
from ledgerflow.testing.workload import ExampleLedger, write_example_ledger


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Project:
    root: Path
    example: ExampleLedger

    @property
    def config(self) -> Path:
        return self.root / "ledgerflow.yml"


Cli = Callable[..., Result]


@pytest.fixture
def project(tmp_path: Path, migrated_database_entry: dict[str, Any]) -> Project:
    """A project (SQLite, then PostgreSQL) whose ledger is ``write_example_ledger``."""
    settings = make_project(tmp_path / "project", migrated_database_entry)
    return Project(tmp_path / "project", write_example_ledger(settings))


@pytest.fixture
def cli(project: Project, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli("runs", "--json")`` runs ``ledgerflow --config PROJECT ...`` as the shell would."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(["--config", str(project.config), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
