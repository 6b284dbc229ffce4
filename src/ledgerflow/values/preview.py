"""Short human previews of values (at most 120 characters), for the ledger and the dashboard."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

PREVIEW_LIMIT = 120
_ELLIPSIS = "…"
_BIG_INT_BITS = 1000
_PLAIN = {int, float, bool, type(None), complex}
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}


def preview(obj: Any, limit: int = PREVIEW_LIMIT) -> str:
    """``[0, 10, 20, … (100 items)]``, ``File('out/a.vcf')``, ``<DataFrame 100×3>``, ..."""
    text = _preview(obj, limit, depth=0)
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _preview(obj: Any, limit: int, depth: int) -> str:
    t = type(obj)
    if t in _PLAIN:
        if t is int and obj.bit_length() > _BIG_INT_BITS:
            return f"<int of {obj.bit_length()} bits>"
        text = repr(obj)
        return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS
    if t is str or t is bytes:
        return _scalar_text(obj, limit, "chars" if t is str else "bytes")
    brackets = _BRACKETS.get(t)
    if brackets is not None:
        return _collection(obj, len(obj), brackets, limit, depth, _items(obj, limit, depth))
    if t is dict:
        return _collection(obj, len(obj), ("{", "}"), limit, depth, _entries(obj, limit, depth))
    special = _library_preview(obj, t)
    if special is not None:
        return special
    try:
        text = repr(obj)
    except Exception:
        return f"<{t.__qualname__}>"
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _scalar_text(obj: str | bytes, limit: int, unit: str) -> str:
    if len(obj) <= limit:  # longer ones have a longer repr: never build it (it can be huge)
        text = repr(obj)
        if len(text) <= limit:
            return text
    suffix = f" ({len(obj)} {unit})"
    head = repr(obj[:limit])
    quote = head[-1]
    return head[: max(limit - len(suffix) - 2, 2)] + _ELLIPSIS + quote + suffix


def _items(obj: Iterable[Any], limit: int, depth: int) -> Iterator[str]:
    inner = max(limit // 3, 12)
    plain = _PLAIN - {int}
    for item in obj:
        t = type(item)
        if (t is int and item.bit_length() <= _BIG_INT_BITS) or t in plain:
            yield repr(item)
        else:
            yield _preview(item, inner, depth + 1)


def _entries(obj: dict[Any, Any], limit: int, depth: int) -> Iterator[str]:
    inner = max(limit // 4, 10)
    for key, value in obj.items():
        yield f"{_preview(key, inner, depth + 1)}: {_preview(value, inner, depth + 1)}"


def _collection(
    obj: Any, size: int, brackets: tuple[str, str], limit: int, depth: int, parts: Iterator[str]
) -> str:
    opening, closing = brackets
    if size == 0:
        return "set()" if type(obj) is set else opening + closing
    if depth >= 2:
        return f"{opening}{_ELLIPSIS}{closing}"
    shown: list[str] = []
    used = len(opening) + len(closing)
    for part in parts:
        used += len(part) + 2
        if used > limit + 2:
            break
        shown.append(part)
    if len(shown) == size:
        trailing = "," if type(obj) is tuple and size == 1 else ""
        return opening + ", ".join(shown) + trailing + closing
    tail = f", {_ELLIPSIS} ({size} items){closing}"
    room = limit - len(opening) - len(tail)
    while shown and sum(map(len, shown)) + 2 * (len(shown) - 1) > room:
        shown.pop()
    if not shown:
        return f"{opening}{_ELLIPSIS} ({size} items){closing}"
    return opening + ", ".join(shown) + tail


def _library_preview(obj: Any, t: type) -> str | None:
    """Shape summaries for numpy and pandas values, without importing either."""
    top = t.__module__.partition(".")[0]
    if top not in ("numpy", "pandas"):
        return None
    shape = getattr(obj, "shape", None)
    if not isinstance(shape, tuple) or (top == "numpy" and shape == ()):
        return None
    dims = "×".join(map(str, shape))
    dtype = getattr(obj, "dtype", None)
    if t.__name__ in ("DataFrame", "Series") or dtype is None:
        return f"<{t.__name__} {dims}>"
    return f"<{t.__name__} {dtype} {dims}>"
