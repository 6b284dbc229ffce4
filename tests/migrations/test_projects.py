"""ledgerflow.testing.projects: plugins written, loaded, forgotten and loaded again."""

from __future__ import annotations

import sys
from pathlib import Path

from ledgerflow.db import Model
from ledgerflow.db.plugins import load_plugins
from ledgerflow.testing.projects import forget_models, make_project, write_plugin

SOURCE = """
from sqlalchemy import Column, Integer
from ledgerflow.db import Model

class {name}(Model):
    id = Column(Integer, primary_key=True)
"""


def test_write_load_forget_and_reload_a_plugin(tmp_path: Path, fresh_models: None) -> None:
    package = write_plugin(tmp_path, "lab.samples", SOURCE.format(name="Sample"))
    settings = make_project(tmp_path, {"dialect": "sqlite", "path": "lab.db"}, plugins=["lab.samples"])

    (plugin,) = load_plugins(settings)

    assert package == tmp_path.resolve() / "lab" / "samples"
    assert (tmp_path / "lab" / "__init__.py").exists() and (package / "migrations").is_dir()
    assert plugin.package_dir == package and plugin.migrations_dir("other") == package / "migrations" / "other"
    assert "sample" in Model.metadata.tables and "lab.samples.models" in sys.modules
    assert Model.metadata.tables["sample"].info == {"bind_key": "default", "module": "lab.samples.models"}

    forget_models()
    assert "sample" not in Model.metadata.tables and "lab.samples.models" not in sys.modules

    write_plugin(tmp_path, "lab.samples", SOURCE.format(name="Specimen"))
    load_plugins(settings)
    assert set(Model.metadata.tables) == {"specimen"}
