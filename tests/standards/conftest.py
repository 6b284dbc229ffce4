"""The genomics example (examples/genomics) run once on a fresh ledger: what every export of
the field's formats (W3C PROV, Workflow Run RO-Crate, OpenLineage) is produced from."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import migrations
from ledgerflow.cli.main import main
from ledgerflow.config import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.testing.plugin import write_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "genomics"


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@dataclass
class Genomics:
    root: Path
    settings: Settings
    run_id: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli("export", ...)`` runs ``ledgerflow ...`` in the working directory, like the shell."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def genomics_project(root: Path, entry: dict[str, Any], extra: dict[str, Any] | None = None) -> Settings:
    """A project at ``root`` holding a copy of the genomics example, its ledger migrated."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLE, root / "genomics", ignore=shutil.ignore_patterns("__pycache__"))
    path = write_config(root, entry)
    if extra:
        config = yaml.safe_load(path.read_text())
        config.update(extra)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    settings = load_settings(path)
    migrations.upgrade(settings)
    return settings


@pytest.fixture
def isolated_imports(tmp_path: Path) -> Iterator[None]:
    """Undo what importing the example's module does to sys.path and sys.modules."""
    path = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = path
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
                del sys.modules[name]


@pytest.fixture
def genomics(tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
             fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> Genomics:
    """The genomics example, run once (9 task runs: main, 4 align, 4 call_variants)."""
    root = tmp_path / "project"
    settings = genomics_project(root, migrated_database_entry)
    monkeypatch.chdir(root)
    monkeypatch.delenv("LEDGERFLOW_CONFIG", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    done = cli("run", "genomics/pipeline.py:main", "--json")
    assert done.code == 0, done.err
    import json

    return Genomics(root, settings, json.loads(done.out)["run_id"])
