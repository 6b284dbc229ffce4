"""Helpers for the run/explain CLI tests: task modules written to a temporary directory."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def isolated_imports(tmp_path: Path) -> Iterator[None]:
    """Undo what importing the test's task modules does to sys.path and sys.modules."""
    path = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = path
        for name, module in list(sys.modules.items()):
            filename = getattr(module, "__file__", None) or ""
            if filename.startswith(str(tmp_path)):
                del sys.modules[name]


@pytest.fixture
def write_module(tmp_path: Path, isolated_imports: None):  # type: ignore[no-untyped-def]
    """``write_module("pkg/tasks.py", source)`` -> path; with ``package`` the folders get
    an ``__init__.py``."""

    def write(relative: str, source: str, *, package: bool = True) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if package:
            for parent in list(path.relative_to(tmp_path).parents)[:-1]:
                init = tmp_path / parent / "__init__.py"
                if not init.exists():
                    init.write_text("")
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    return write


@pytest.fixture
def unique() -> str:
    """A package name no other test uses (modules stay imported within a process)."""
    return f"lfpkg_{uuid.uuid4().hex[:8]}"
