"""Fixtures of the engine tests."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def load_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], ModuleType]]:
    """Write a module ``pipe_mod`` (into ``tmp_path``) and import it afresh, as after an edit."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    path = tmp_path / "pipe_mod.py"

    def load(source: str) -> ModuleType:
        path.write_text(textwrap.dedent(source))
        sys.modules.pop("pipe_mod", None)
        spec = importlib.util.spec_from_file_location("pipe_mod", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["pipe_mod"] = module
        spec.loader.exec_module(module)
        return module

    yield load
    sys.modules.pop("pipe_mod", None)
