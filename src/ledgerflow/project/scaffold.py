"""Creating a new project: ``ledgerflow.yml`` and a sample plugin package."""

from __future__ import annotations

import keyword
import re
import secrets
import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ledgerflow.config.loader import CONFIG_NAMES
from ledgerflow.db.plugins import foreign_module
from ledgerflow.errors import ProjectExistsError, UsageError
from ledgerflow.project import templates

DEFAULT_PLUGIN = "pipeline"
CONFIG_FILE = CONFIG_NAMES[0]

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Project:
    """What :func:`init_project` wrote."""

    root: Path
    config: Path
    plugin: str
    plugin_dir: Path
    files: tuple[Path, ...]

    def next_steps(self, cwd: Path | None = None) -> str:
        here = (Path.cwd() if cwd is None else cwd).resolve()
        if self.root == here:
            cd = ""
        elif self.root.is_relative_to(here):
            cd = f"  cd {shlex.quote(str(self.root.relative_to(here)))}\n"
        else:
            cd = f"  cd {shlex.quote(str(self.root))}\n"
        return templates.NEXT_STEPS.format(cd=cd, plugin=self.plugin)


def check_plugin_name(name: str) -> str:
    """``name`` when it is a dotted Python module name, else a :class:`UsageError`."""
    parts = name.split(".")
    bad = [p for p in parts if not _PART.fullmatch(p) or keyword.iskeyword(p)]
    if not name or bad:
        raise UsageError(
            f"plugin name {name!r} is not a Python module name",
            hint="use letters, digits and underscores, dots between packages, e.g. 'pipeline'",
        )
    return name


def check_plugin_free(name: str, root: Path) -> None:
    """A :class:`UsageError` when ``name`` already resolves to a module outside ``root``.

    The project would import that module, not the plugin package ``init`` writes.
    """
    other = foreign_module(name, root)
    if other is not None:
        raise UsageError(
            f"plugin name {name!r} is already {other}: the project would import that, "
            "not its own package",
            hint=f"pick another name, e.g. '{name.split('.')[0]}_plugin' or 'pipeline'",
        )


def _planned(root: Path, plugin: str) -> dict[Path, str]:
    """Every file to write, with its content; packages along a dotted name get an __init__.

    The plugin's ``migrations/`` folder gets the revision that creates the sample model's
    table, so a new project is in sync after ``db upgrade``.
    """
    files: dict[Path, str] = {root / CONFIG_FILE: templates.CONFIG.format(plugin=plugin)}
    parts = plugin.split(".")
    for depth in range(1, len(parts)):
        init = root.joinpath(*parts[:depth], "__init__.py")
        if not init.exists():
            files[init] = ""
    package = root.joinpath(*parts)
    files[package / "__init__.py"] = templates.PLUGIN_INIT.format(plugin=plugin)
    files[package / "models.py"] = templates.MODELS.format(plugin=plugin)
    now = datetime.now()
    revision = secrets.token_hex(6)
    name = f"{now:%Y_%m_%d}_{revision}_add_measurement.py"
    files[package / "migrations" / name] = templates.FIRST_MIGRATION.format(
        revision=revision, plugin=plugin, created=now.isoformat(sep=" ", timespec="seconds")
    )
    return files


def _existing(root: Path, plugin: str) -> list[Path]:
    found = [root / name for name in CONFIG_NAMES if (root / name).exists()]
    package = root.joinpath(*plugin.split("."))
    for name in ("__init__.py", "models.py", "migrations"):
        if (package / name).exists():
            found.append(package / name)
    return found


def init_project(directory: str | Path = ".", plugin: str = DEFAULT_PLUGIN) -> Project:
    """Write ``ledgerflow.yml`` (SQLite ledger ``ledgerflow.db``) and a sample plugin.

    Refuses, writing nothing, when ``directory`` already holds a ``ledgerflow.yml`` or the
    plugin's files.
    """
    check_plugin_name(plugin)
    root = Path(directory).expanduser().resolve()
    check_plugin_free(plugin, root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory")
    existing = _existing(root, plugin)
    if existing:
        raise ProjectExistsError(
            f"{existing[0]} already exists: {root} already holds a ledgerflow project",
            hint="pick another directory, or remove the file to start over",
        )
    files = _planned(root, plugin)
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(content)
    return Project(
        root=root,
        config=root / CONFIG_FILE,
        plugin=plugin,
        plugin_dir=root.joinpath(*plugin.split(".")),
        files=tuple(files),
    )
