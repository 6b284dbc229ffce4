"""Finding a task from a target string: ``package.module:task`` or ``path/to/file.py:task``.

The CLI and the library use :func:`load_task`; every bad target is a
:class:`~ledgerflow.errors.UsageError` that says what was wrong and, when the module was
found, which tasks it offers.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ledgerflow.errors import PluginImportError, UsageError

if TYPE_CHECKING:
    from ledgerflow.engine.task import Task

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
TARGET_FORMS = "MODULE:TASK or path/to/file.py:TASK"


def split_target(target: str) -> tuple[str, str]:
    """``"pkg.mod:main"`` -> ``("pkg.mod", "main")``; the module part may be a file path."""
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise UsageError(
            f"'{target}' is not a task target", hint=f"expected {TARGET_FORMS}, e.g. tasks:main"
        )
    if not _ATTR.fullmatch(name):
        raise UsageError(f"'{name}' in '{target}' is not a valid task name", hint=TARGET_FORMS)
    return where, name


def is_file_target(where: str) -> bool:
    """Whether the module part of a target names a file rather than a dotted module."""
    return where.endswith(".py") or "/" in where or os.sep in where


def extend_sys_path(directories: Iterable[str | Path]) -> None:
    """Put directories at the front of ``sys.path`` (once each), first one first."""
    for directory in reversed([os.path.abspath(d) for d in directories]):
        if directory in sys.path:
            continue
        sys.path.insert(0, directory)


def load_task(target: str, *, root: str | Path | None = None, cwd: str | Path | None = None) -> Task:
    """The task named by ``target``, importing its module.

    ``root`` (the project directory, where ``ledgerflow.yml`` lives) and ``cwd`` are put on
    ``sys.path`` first, so a project's plugins and local modules import like they do from
    the project directory.
    """
    where, name = split_target(target)
    base = Path(cwd) if cwd is not None else Path.cwd()
    extend_sys_path([p for p in (root, base) if p is not None])
    if is_file_target(where):
        module = import_file(base / where)
    else:
        module = import_module(where)
    return _task_attribute(module, name, target)


def import_module(name: str) -> ModuleType:
    """Import a dotted module, turning "not found" and import-time crashes into one line."""
    if not _MODULE.fullmatch(name):
        raise UsageError(f"'{name}' is not a module name", hint=TARGET_FORMS)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(
                f"module '{name}' not found",
                hint=f"looked in the project directory, the working directory and sys.path; "
                f"'{exc.name}' does not exist",
            ) from None
        raise _import_failed(name, exc) from exc
    except Exception as exc:
        raise _import_failed(name, exc) from exc


def import_file(path: Path) -> ModuleType:
    """Import a Python file by path.

    Its directory joins ``sys.path`` and it is imported under its own name (as
    ``python path/to/file.py`` would see it), so that worker processes can import it too;
    a clash with another module of that name falls back to a private, unique name.
    """
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise UsageError(f"file '{path}' not found", hint=TARGET_FORMS)
    if path.suffix != ".py":
        raise UsageError(f"'{path}' is not a Python file (.py)", hint=TARGET_FORMS)
    name = _module_name_for(path)
    existing = sys.modules.get(name)
    if existing is not None and _same_file(existing, path):
        return existing
    if existing is None and "." in name:
        module = import_module(name)
        if _same_file(module, path):
            return module
        existing = module
    if existing is not None or not name.isidentifier():
        from ledgerflow.hashing import hash_bytes

        digest = hash_bytes(str(path).encode())[:10]
        stem = re.sub(r"\W", "_", path.stem)
        name = f"_ledgerflow_file_{digest}_{stem}"
    extend_sys_path([path.parent])
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"'{path}' cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _import_failed(str(path), exc) from exc
    return module


def _module_name_for(path: Path) -> str:
    """Dotted name of a file inside packages (``a/b/c.py`` with ``a/__init__.py``) or its stem."""
    parts = [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    if len(parts) > 1:
        extend_sys_path([directory])
        dotted = ".".join(parts)
        if all(part.isidentifier() for part in parts):
            return dotted
    return path.stem


def _same_file(module: ModuleType, path: Path) -> bool:
    filename = getattr(module, "__file__", None)
    return filename is not None and os.path.abspath(filename) == str(path)


def _import_failed(name: str, exc: BaseException) -> PluginImportError:
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        detail = f"SyntaxError: {exc.msg} ({exc.filename}, line {exc.lineno})"
    return PluginImportError(
        f"importing '{name}' failed: {detail}", hint="run with --debug for the traceback"
    )


def is_task(value: Any) -> bool:
    """Whether ``value`` is a task (made by ``@task``)."""
    return bool(getattr(type(value), "__ledgerflow_task__", False))


def tasks_in(module: ModuleType) -> list[str]:
    """Names of the module's attributes that are tasks, sorted."""
    return sorted(name for name, value in vars(module).items() if is_task(value))


def _task_attribute(module: ModuleType, name: str, target: str) -> Task:
    where = getattr(module, "__file__", None) or module.__name__
    value: Any = module
    for part in name.split("."):
        if not hasattr(value, part):
            raise UsageError(
                f"'{module.__name__}' ({where}) has no attribute '{name}'",
                hint=_available(module),
            )
        value = getattr(value, part)
    if not is_task(value):
        kind = _kind(value)
        raise UsageError(
            f"'{target}' is a {kind}, not a task (decorate it with @task)",
            hint=_available(module),
        )
    return value  # type: ignore[no-any-return]


def _kind(value: Any) -> str:
    if isinstance(value, type):
        return "class"
    if isinstance(value, ModuleType):
        return "module"
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        return "function"
    return type(value).__name__


def _available(module: ModuleType) -> str:
    names = tasks_in(module)
    if not names:
        return f"'{module.__name__}' defines no task"
    return "tasks in this module: " + ", ".join(names)
