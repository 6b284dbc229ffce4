"""Throwaway projects and plugins for tests: write a plugin, make a project, forget the models.

Models register on the global :class:`~ledgerflow.db.Model` metadata when their module is
imported, so a test that defines models must clean up after itself or the next test sees
its tables. Write plugins with :func:`write_plugin` and use the ``fresh_models`` fixture::

    def test_blog(tmp_path, database_entry, fresh_models):
        write_plugin(tmp_path, "blog", '''
            from sqlalchemy import Column, Integer, Text
            from ledgerflow.db import Model

            class Post(Model):
                id = Column(Integer, primary_key=True)
                body = Column(Text)
        ''')
        settings = make_project(tmp_path, database_entry, plugins=["blog"])
        ledgerflow.migrations.make_migrations(settings, "blog", "add post")

Enable the fixture with ``pytest_plugins = ["ledgerflow.testing.projects"]``.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.db.model import clear_models

CONFIG_NAME = "ledgerflow.yml"

_roots: set[Path] = set()  # folders write_plugin wrote packages under


def write_plugin(root: str | Path, dotted_name: str, models_source: str = "") -> Path:
    """Create (or rewrite) the package ``dotted_name`` under ``root``; returns its folder.

    Every level gets an ``__init__.py``; the last one gets ``models.py`` (``models_source``,
    dedented) and an empty ``migrations/`` folder. Rewriting the models of a plugin that was
    already imported needs :func:`forget_models` first so the new source is imported.
    """
    root = Path(root).resolve()
    parts = dotted_name.split(".")
    for depth in range(1, len(parts) + 1):
        folder = root.joinpath(*parts[:depth])
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "__init__.py").exists():
            (folder / "__init__.py").write_text("", encoding="utf-8")
    package = root.joinpath(*parts)
    (package / "models.py").write_text(textwrap.dedent(models_source).lstrip(), encoding="utf-8")
    (package / "migrations").mkdir(exist_ok=True)
    shutil.rmtree(package / "__pycache__", ignore_errors=True)
    _roots.add(root)
    importlib.invalidate_caches()
    return package


def forget_models(*folders: str | Path) -> None:
    """Forget every model and unload the modules written by :func:`write_plugin`.

    Modules loaded from ``folders`` are unloaded too. The next
    :func:`ledgerflow.db.plugins.load_plugins` imports the plugins afresh.
    """
    clear_models()
    roots = _roots | {Path(f).resolve() for f in folders}
    for name, module in list(sys.modules.items()):
        if _under(module, roots):
            del sys.modules[name]
    importlib.invalidate_caches()


def _under(module: Any, roots: set[Path]) -> bool:
    paths = [getattr(module, "__file__", None), *list(getattr(module, "__path__", None) or [])]
    for path in paths:
        if path and any(Path(path).resolve().is_relative_to(root) for root in roots):
            return True
    return False


def make_project(
    root: str | Path,
    database_entry: Mapping[str, Any],
    plugins: Sequence[str] = (),
    *,
    databases: Mapping[str, Mapping[str, Any]] | None = None,
    **options: Any,
) -> Settings:
    """Write ``root/ledgerflow.yml`` (``default`` = ``database_entry``) and load it.

    ``databases`` adds more binds; other keyword arguments are top-level keys
    (``auto_migrate=True``, ...).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "databases": {"default": dict(database_entry), **{k: dict(v) for k, v in (databases or {}).items()}},
        "plugins": list(plugins),
        **options,
    }
    path = root / CONFIG_NAME
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return load_settings(path)


@contextmanager
def forgetting_models() -> Iterator[None]:
    """Undo, on leaving, what the block did to the global models: tables, plugin modules,
    ``sys.path``. What :func:`fresh_models` does around one test, for a fixture of a wider
    scope (a module's project whose plugins were imported in this process).

    Unloads the modules written by :func:`write_plugin` and those imported from folders the
    block added to ``sys.path`` (``load_plugins`` adds the project root), so that another
    project's package of the same name is imported afresh. Also forgets the cached migration
    scripts and closes the connections :func:`ledgerflow.migrations.ensure_current` keeps.
    """
    path_before = list(sys.path)
    try:
        yield
    finally:
        added = [entry for entry in sys.path if entry not in path_before]
        forget_models(*(entry for entry in added if entry))
        for entry in added:
            while entry in sys.path:
                sys.path.remove(entry)
        _roots.clear()
        from ledgerflow.migrations.heads import dispose_engines
        from ledgerflow.migrations.scripts import clear_cache

        clear_cache()
        dispose_engines()


@pytest.fixture
def fresh_models() -> Iterator[None]:
    """Undo what the test did to the global models: tables, plugin modules, ``sys.path``
    (see :func:`forgetting_models`)."""
    with forgetting_models():
        yield
