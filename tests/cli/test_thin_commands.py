"""The command line parses, calls ``ledgerflow.api`` and formats: no command module reaches
into the engine, the ledger, provenance, migrations, values or the database layer itself."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "src" / "ledgerflow" / "cli"
#: What a command module may import from ledgerflow (web: the dashboard command serves it).
ALLOWED = {"api", "cli", "config", "errors", "_version", "project", "web"}


def _ledgerflow_imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] if node.module != "ledgerflow" else [
                f"ledgerflow.{alias.name}" for alias in node.names
            ]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "ledgerflow"]


def test_command_modules_import_only_the_api_from_the_library() -> None:
    leaks = [
        f"{path.name}:{line}: {name}"
        for path in sorted(CLI.glob("*.py"))
        for line, name in _ledgerflow_imports(path)
        if name.split(".")[1] not in ALLOWED
    ]
    assert leaks == []


def test_the_guard_sees_a_leak(tmp_path: Path) -> None:
    sample = tmp_path / "leaky.py"
    sample.write_text("def f():\n    from ledgerflow.engine import execute\n")
    assert _ledgerflow_imports(sample) == [(2, "ledgerflow.engine")]
