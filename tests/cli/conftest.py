"""Running the ``ledgerflow`` command in-process, the way a user's shell would."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ledgerflow.cli.main import main
from ledgerflow.db.model import clear_models
from ledgerflow.migrations.scripts import clear_cache


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_ledgerflow(*args: str) -> Result:
    """``ledgerflow ARGS`` through :func:`ledgerflow.cli.main.main` (its error handling included)."""
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return Result(int(code or 0), stdout, stderr)


@pytest.fixture
def ledgerflow() -> Callable[..., Result]:
    return run_ledgerflow


def forget_project(root: Path) -> None:
    """Forget the models and unload the modules of the project under ``root``, so that the next
    command imports its plugin afresh (as a new process would)."""
    clear_models()
    clear_cache()
    resolved = root.resolve()
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if location and Path(location).resolve().is_relative_to(resolved):
            del sys.modules[name]


@pytest.fixture
def forget() -> Callable[[Path], None]:
    """``forget(root)``: after editing a plugin on disk, make the next command re-import it."""
    return forget_project


@pytest.fixture
def new_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_models: None
) -> Iterator[Callable[..., Path]]:
    """``new_project(database_entry=None, plugin="pipeline")``: ``ledgerflow init`` in a fresh
    folder (made the working directory), its default database replaced by ``database_entry``."""
    roots: list[Path] = []

    def make(database_entry: dict[str, Any] | None = None, plugin: str = "pipeline") -> Path:
        root = tmp_path / f"project{len(roots)}"
        result = run_ledgerflow("init", str(root), "--plugin", plugin)
        assert result.exit_code == 0, result.output
        if database_entry is not None:
            config = root / "ledgerflow.yml"
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
            data["databases"]["default"] = database_entry
            config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        monkeypatch.chdir(root)
        roots.append(root)
        return root

    yield make
    for root in roots:
        forget_project(root)
