"""The helpers that let tests import projects' plugins in one process without leaking them."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from ledgerflow.config.settings import Settings
from ledgerflow.db.plugins import load_plugins
from ledgerflow.testing.projects import forgetting_models, make_project


def _copy_of_a_project(root: Path, package: str) -> Settings:
    """A project holding its own copy of the plugin ``<package>.reduction`` (as a test that
    copies the examples makes: folders, not written by write_plugin)."""
    plugin = root / package / "reduction"
    plugin.mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (plugin / "__init__.py").write_text(f"WHERE = {str(root)!r}\n")
    return make_project(root, {"dialect": "sqlite", "path": str(root / "ledger.db")},
                        plugins=[f"{package}.reduction"])


def test_a_project_imported_for_a_whole_module_does_not_shadow_the_next_projects_copy(tmp_path: Path) -> None:
    package = f"tuto_{uuid.uuid4().hex[:8]}"
    first = _copy_of_a_project(tmp_path / "first", package)
    with forgetting_models():
        (plugin,) = load_plugins(first)
        assert plugin.module is sys.modules[f"{package}.reduction"]
        where = plugin.module.WHERE
        assert where == str(tmp_path / "first")
    assert not [name for name in sys.modules if name.split(".")[0] == package]
    assert str(first.root) not in sys.path
    second = _copy_of_a_project(tmp_path / "second", package)
    with forgetting_models():
        (plugin,) = load_plugins(second)  # the first copy would be refused (another project's)
        assert plugin.package_dir == (tmp_path / "second" / package / "reduction").resolve()
        where = plugin.module.WHERE
        assert where == str(tmp_path / "second")
