"""Public names imported on first use, so importing a package stays cheap.

A package lists where each of its public names lives and gets its module-level
``__getattr__`` and ``__dir__`` from :func:`lazy_names`::

    __getattr__, __dir__ = lazy_names(__name__, {"Ledger": "ledgerflow.provenance.ledger"}, __all__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_names(
    package: str, homes: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` importing ``homes[name]`` on first use (then kept in the package's
    globals), and ``__dir__`` listing the package's globals and ``public`` names."""
    names = frozenset(public)

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | names)

    return __getattr__, __dir__
