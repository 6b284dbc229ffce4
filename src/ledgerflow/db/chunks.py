"""Keys in ``IN (...)`` lists of a bounded size, for queries over many records."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any

#: Keys per ``IN (...)`` list: below SQLite's historical limit of 999 bound variables.
IN_LIST_KEYS = 900


def chunks(keys: Iterable[Any], size: int = IN_LIST_KEYS) -> Iterator[list[Any]]:
    """The distinct, non-empty ``keys`` in sorted lists of at most ``size``.

    Sorted, so the same keys always make the same statements (and index range scans).
    """
    items: list[Hashable] = sorted({key for key in keys if key is not None and key != ""})
    for start in range(0, len(items), size):
        yield items[start : start + size]
