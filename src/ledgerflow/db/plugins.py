"""The plugins named under ``plugins:`` in ``ledgerflow.yml``.

A plugin is a Python package (``tuto.data_reduction``) that may hold a ``models`` module with
its tables and a ``migrations/`` folder with its revisions. Loading a plugin imports the
package and its ``models`` module, so its tables are registered on :class:`~ledgerflow.db.Model`
before anything compares models with a database.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ledgerflow.config.settings import DEFAULT_BIND, Settings
from ledgerflow.errors import LedgerflowError, PluginImportError

MIGRATIONS_FOLDER = "migrations"


@dataclass(frozen=True)
class Plugin:
    """An imported plugin package."""

    name: str
    module: ModuleType
    package_dir: Path

    def migrations_dir(self, bind: str = DEFAULT_BIND) -> Path:
        """Where the plugin's revisions for ``bind`` live: ``migrations/`` or ``migrations/<bind>/``."""
        base = self.package_dir / MIGRATIONS_FOLDER
        return base if bind == DEFAULT_BIND else base / bind

    def owns_module(self, module: str | None) -> bool:
        """Whether a module name is the plugin package or lies below it."""
        return bool(module) and (module == self.name or str(module).startswith(self.name + "."))


def load_plugins(settings: Settings) -> list[Plugin]:
    """Import every plugin of ``settings`` (and its ``models`` module) in configuration order."""
    _put_root_on_path(settings.root)
    return [_load(name, settings) for name in settings.plugins]


def load_plugin(settings: Settings, name: str) -> Plugin:
    """Import one plugin by dotted name (it need not be listed in ``settings``)."""
    _put_root_on_path(settings.root)
    return _load(name, settings)


def _put_root_on_path(root: Path) -> None:
    entry = str(root)
    if entry not in sys.path:
        sys.path.insert(0, entry)


def foreign_module(name: str, root: Path) -> str | None:
    """What ``name`` already is outside the project ``root``, or None.

    A plugin named like a standard-library module (``json``) or an installed package would be
    shadowed by it: the project's own folder would never be imported.
    """
    top = name.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return f"the standard library's module '{top}'"
    try:
        spec = importlib.machinery.PathFinder.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    location = next(iter(spec.submodule_search_locations or []), None) or spec.origin or ""
    installed = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    path = Path(location).resolve()
    if path.is_relative_to(Path(root).resolve()):
        return None
    if any(path.is_relative_to(Path(base).resolve()) for base in installed):
        return f"the installed module '{top}' at {location}"
    return None


def _load(name: str, settings: Settings) -> Plugin:
    module = _import(name, name, settings)
    _check_origin(name, module, settings)
    paths = list(getattr(module, "__path__", []) or [])
    if not paths:
        raise PluginImportError(
            f"plugin '{name}' listed in {_config_name(settings)} is a module, not a package",
            hint=f"make it a folder {name.replace('.', '/')}/ with an __init__.py",
        )
    models = f"{name}.models"
    if _has_submodule(models, name, settings):
        _import(models, name, settings)
    return Plugin(name=name, module=module, package_dir=Path(paths[0]).resolve())


def _check_origin(name: str, module: ModuleType, settings: Settings) -> None:
    """Refuse a plugin name that resolved to another module than the project's folder."""
    top = name.split(".")[0]
    own = Path(settings.root).resolve() / top
    stdlib = top in sys.stdlib_module_names or top in sys.builtin_module_names
    if not stdlib and not own.exists():
        return  # an installed plugin: no folder of the project to compare with
    paths = [Path(p).resolve() for p in getattr(module, "__path__", None) or []]
    if not stdlib and any(p.is_relative_to(own) for p in paths):
        return
    where = paths[0] if paths else getattr(module, "__file__", None) or "(built in)"
    raise PluginImportError(
        f"plugin '{name}' listed in {_config_name(settings)} resolves to another module "
        f"({where}), not to the project's package",
        hint=f"rename the plugin package (e.g. '{top}_plugin') and its entry under plugins:",
    )


def _has_submodule(dotted: str, plugin: str, settings: Settings) -> bool:
    if dotted in sys.modules:
        return True
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError) as exc:
        raise _import_error(plugin, settings, exc) from exc


def _import(dotted: str, plugin: str, settings: Settings) -> ModuleType:
    try:
        return importlib.import_module(dotted)
    except LedgerflowError:
        raise
    except Exception as exc:
        raise _import_error(plugin, settings, exc) from exc


def _import_error(plugin: str, settings: Settings, exc: BaseException) -> PluginImportError:
    lines = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return PluginImportError(
        f"cannot import plugin '{plugin}' listed in {_config_name(settings)}: {detail}",
        hint=(
            f"the plugin package must be importable: put it under the project root "
            f"({settings.root}), add its folder to PYTHONPATH, or pip install it"
        ),
    )


def _config_name(settings: Settings) -> str:
    return str(settings.path) if settings.path else "the settings (plugins:)"
