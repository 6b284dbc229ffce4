"""``ledgerflow init``: the files it writes, and that it never overwrites a project."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.config import load_settings
from ledgerflow.db import Model
from ledgerflow.db.plugins import load_plugins
from ledgerflow.project import init_project


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_init_writes_config_and_sample_plugin(
    ledgerflow: Callable[..., Any], tmp_path: Path, fresh_models: None
) -> None:
    root = tmp_path / "demo"
    result = ledgerflow("init", str(root))
    assert result.exit_code == 0, result.output
    [first] = (root / "pipeline" / "migrations").iterdir()
    assert sorted(snapshot(root)) == [
        "ledgerflow.yml",
        "pipeline/__init__.py",
        f"pipeline/migrations/{first.name}",
        "pipeline/models.py",
    ]
    assert re.fullmatch(r"\d{4}_\d\d_\d\d_[0-9a-f]{12}_add_measurement\.py", first.name)
    assert 'branch_labels = ("pipeline",)' in first.read_text()
    settings = load_settings(root / "ledgerflow.yml")
    assert settings.default.dialect == "sqlite"
    assert settings.default.path == root.resolve() / "ledgerflow.db"
    assert settings.plugins == ("pipeline",)
    assert "ledgerflow db upgrade" in result.stdout
    assert 'make-migrations --plugin pipeline -m "describe the change"' in result.stdout
    [plugin] = load_plugins(settings)
    assert plugin.package_dir == root.resolve() / "pipeline"
    assert "measurement" in Model.metadata.tables
    assert Model.metadata.tables["measurement"].info["module"] == "pipeline.models"


def test_init_with_a_dotted_plugin_name(
    ledgerflow: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = ledgerflow("init", "--plugin", "tuto.data_reduction")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tuto" / "__init__.py").read_text() == ""
    assert (tmp_path / "tuto" / "data_reduction" / "models.py").is_file()
    assert (tmp_path / "tuto" / "data_reduction" / "migrations").is_dir()
    assert load_settings(tmp_path / "ledgerflow.yml").plugins == ("tuto.data_reduction",)
    assert "cd " not in result.stdout.split("Next steps:")[1].splitlines()[1]  # already there


@pytest.mark.parametrize("existing", ["ledgerflow.yml", "ledgerflow.yaml", "pipeline/models.py"])
def test_init_refuses_an_existing_project(
    ledgerflow: Callable[..., Any], tmp_path: Path, existing: str
) -> None:
    (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / existing).write_text("# mine\n")
    before = snapshot(tmp_path)
    result = ledgerflow("init", str(tmp_path))
    assert result.exit_code == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert str(tmp_path / existing) in lines[0]
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {existing.split("/")[0]}
    )


def test_init_twice_keeps_the_first_project(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "pipeline" / "models.py").write_text("# edited\n")
    before = snapshot(tmp_path)
    from ledgerflow.errors import ProjectExistsError

    with pytest.raises(ProjectExistsError, match="ledgerflow.yml already exists"):
        init_project(tmp_path, plugin="other")
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("name", ["a-b", "1abc", "class", "pkg..mod", ""])
def test_init_rejects_a_bad_plugin_name(
    ledgerflow: Callable[..., Any], tmp_path: Path, name: str
) -> None:
    result = ledgerflow("init", str(tmp_path / "x"), "--plugin", name)
    assert result.exit_code == 2
    assert "is not a Python module name" in result.stderr
    assert not (tmp_path / "x").exists()


def _uncomment_examples(text: str) -> str:
    """The configuration with its commented examples switched on (the !include alternative aside)."""
    lines = []
    for line in text.splitlines():
        match = re.fullmatch(r"(\s*)# (\s*[a-z_]+:.*)", line)
        lines.append(match[1] + match[2] if match and "!include" not in line else line)
    return "\n".join(lines) + "\n"


def test_commented_examples_are_valid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = init_project(tmp_path)
    enabled = _uncomment_examples(project.config.read_text())
    assert enabled.count("\n") == project.config.read_text().count("\n")
    project.config.write_text(enabled)
    monkeypatch.setenv("CATALOG_ADMIN_PASSWORD", "adm-Secret-1")
    monkeypatch.setenv("CATALOG_USER_PASSWORD", "usr-Secret-2")
    settings = load_settings(project.config)
    catalog = settings.databases["catalog"]
    assert (catalog.dialect, catalog.host, catalog.port, catalog.database) == (
        "postgresql", "localhost", 5432, "catalog",
    )
    assert catalog.admin is not None and catalog.admin.username == "catalog_admin"
    assert catalog.admin.password == "adm-Secret-1"
    assert catalog.user is not None and catalog.user.password == "usr-Secret-2"
    assert settings.executor.kind == "processes" and settings.executor.workers == 4
    assert settings.values.inline_max_bytes == 1_048_576
    assert settings.auto_migrate is False
    shown = settings.redacted_yaml()
    assert "Secret" not in shown and "catalog_admin:***" in shown
