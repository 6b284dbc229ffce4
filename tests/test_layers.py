"""The layering contract: each folder of the package imports only from its own layer or
lower ones, lazy imports inside functions included.

    _version, _lazy, errors → config, hashing → db, migrations, ledger, values → engine → executors
    → provenance → api → project → cli, web, testing

The package's ``__init__`` (its public re-exports) and ``__main__`` stand outside the
layers: nothing inside the package imports from them (the version is in ``_version``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ledgerflow"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "_lazy", "errors"),
    ("config", "hashing"),
    ("db", "migrations", "ledger", "values"),
    ("engine",),
    ("executors",),
    ("provenance",),
    ("api",),
    ("project",),
    ("cli", "web", "testing"),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


#: Every module of the package, for module paths written as strings.
MODULES = frozenset(_module_name(p) for p in PACKAGE.rglob("*.py"))
_MODULE_PATH = re.compile(r"ledgerflow(\.\w+)+(:\w+)?")


def imported_modules(
    source: str, module: str, is_package: bool, strings: bool = True
) -> list[tuple[int, str]]:
    """Every ``ledgerflow`` module that ``source`` imports, wherever the import statement is
    (top level, inside a function, under ``TYPE_CHECKING``), with its line number; a module
    named in a string (``importlib.import_module("ledgerflow.x")``, a table of lazy
    re-exports, ``"module:Class"``) counts as an import too unless ``strings`` is false
    (a lazy registry of handlers that register themselves is not a cycle)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if strings and _MODULE_PATH.fullmatch(node.value):
                named = node.value.partition(":")[0]
                if named in MODULES:
                    found.append((node.lineno, named))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "ledgerflow"]


def _part(name: str) -> str | None:
    """The layer folder (or top-level module) of a dotted ledgerflow name."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(source: str, path: str, module: str, is_package: bool = False) -> list[str]:
    """Upward imports of one module, as ``path:line: a -> b`` lines."""
    own = _part(module)
    if own is None or own == "__main__":
        return []
    rank = RANK[own]
    found = []
    for line, name in imported_modules(source, module, is_package):
        part = _part(name)
        if part is None or part == own:
            continue
        if part not in RANK or RANK[part] > rank:
            found.append(f"{path}:{line}: {module} imports {name}")
    return found


def package_violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "versions" in path.parts:  # migration scripts run inside Alembic, not the library
            continue
        found += violations(
            path.read_text(),
            str(path.relative_to(PACKAGE.parent)),
            _module_name(path),
            path.name == "__init__.py",
        )
    return found


def test_every_folder_is_in_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    parts = {p for p in parts if not p.startswith(("__", ".")) and p != "py"}
    assert parts <= set(RANK), f"put {sorted(parts - set(RANK))} in a layer of LAYERS"


def test_no_module_imports_from_a_higher_layer() -> None:
    found = package_violations()
    assert not found, "imports against the layers:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("ledgerflow.engine.runner", "from ledgerflow.provenance.ledger import Ledger\n"),
        ("ledgerflow.engine.plan", "def f():\n    import ledgerflow.executors.local\n"),
        ("ledgerflow.config.loader", "from typing import TYPE_CHECKING\n"
         "if TYPE_CHECKING:\n    from ledgerflow.db import Database\n"),
        ("ledgerflow.ledger.recorder", "from ledgerflow import engine\n"),
        ("ledgerflow.values.store", "from ledgerflow import Ledger\n"),
        ("ledgerflow.engine.runner", "from ledgerflow import __version__\n"),
        ("ledgerflow.provenance.query", "from ledgerflow.cli.output import echo\n"),
        ("ledgerflow.engine.graph", "from ..api import run\n"),
        ("ledgerflow.engine.runner", "import importlib\nimportlib.import_module('ledgerflow.api')\n"),
        ("ledgerflow.ledger.recorder", "_HOMES = {'Ledger': 'ledgerflow.provenance.ledger'}\n"),
    ],
)  # fmt: skip
def test_an_upward_import_is_caught(module: str, source: str) -> None:
    assert violations(source, "x.py", module), f"{source!r} in {module} should be refused"


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("ledgerflow.engine.runner", "from ledgerflow.ledger.recorder import Recorder\n"),
        ("ledgerflow.executors.local", "from ledgerflow.engine.executor import Executor\n"),
        ("ledgerflow.cli.run", "from ledgerflow.api import run\n"),
        ("ledgerflow.provenance.query", "from . import _load\n"),
        ("ledgerflow.engine.runner", "from ledgerflow._version import __version__\n"),
    ],
)  # fmt: skip
def test_a_downward_import_is_allowed(module: str, source: str) -> None:
    assert violations(source, "x.py", module) == []


def _import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> modules of its own folder, folder -> other folders) that it imports."""
    modules: dict[str, set[str]] = {}
    folders: dict[str, set[str]] = {}
    names = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        if "versions" in path.parts or path.name == "__init__.py":
            continue
        name = _module_name(path)
        for _, target in imported_modules(path.read_text(), name, False, strings=False):
            while target and target not in names:
                target = target.rpartition(".")[0]
            if not target or target == name:
                continue
            if target.rpartition(".")[0] == name.rpartition(".")[0]:
                modules.setdefault(name, set()).add(target)
            own, other = _part(name), _part(target)
            if own and other and own != other and "__" not in own + other:
                folders.setdefault(own, set()).add(other)
    return modules, folders


def test_no_cycle_between_modules_of_a_folder() -> None:
    cycles = [" -> ".join(c) for c in _cycles(_import_graph()[0])]
    assert not cycles, "modules importing each other:\n" + "\n".join(cycles)


def test_no_cycle_between_folders() -> None:
    cycles = [" -> ".join(c) for c in _cycles(_import_graph()[1])]
    assert not cycles, "folders importing each other:\n" + "\n".join(cycles)


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of ``graph`` (iterative search)."""
    found = []
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        stack = [(start, iter(sorted(graph.get(start, ()))))]
        path = [start]
        on_path = {start}
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.discard(path.pop())
                done.add(node)
            elif child in on_path:
                found.append([*path[path.index(child) :], child])
            elif child not in done:
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
                on_path.add(child)
    return found
