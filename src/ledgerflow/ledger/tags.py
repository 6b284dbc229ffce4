"""Tags: the one parser and the one set of rules for ``key=value`` labels on records.

A key starts with a letter, a digit or ``_`` and goes on with letters, digits, ``_``, ``.``
and ``-``; keys and values hold up to 255 characters (the width of ``lf_tag``). Tagging a
run (``--tag``, ``run(tags=...)``), tagging any record (``ledgerflow tag``,
``Ledger.tag``) and filtering by tag (``--tag KEY[=VALUE]``) all read tags here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ledgerflow.errors import UsageError

KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
#: The longest key or value the ledger holds.
MAX_LENGTH = 255
RULES = "keys use letters, digits, '_', '.', '-'; keys and values hold 255 characters"

#: ``{"k": "v"}``, ``"k=v"``, ``("k", "v")`` or a list of strings and pairs.
Tags = Mapping[str, Any] | str | tuple[str, Any] | Iterable[str | tuple[str, Any]]


def check_tag(key: Any, value: Any, *, option: str = "tag") -> tuple[str, str | None]:
    """``(key, value)`` as stripped text, refused (one line naming the option) when either
    breaks the rules; a value of None (any value, in a filter) passes through."""
    key = str(key).strip()
    text = None if value is None else str(value).strip()
    shown = key if text is None else f"{key}={text}"
    if not KEY.fullmatch(key) or len(key) > MAX_LENGTH:
        raise UsageError(f"--{option} '{shown}' has an invalid key", hint=RULES)
    if text is not None and len(text) > MAX_LENGTH:
        raise UsageError(f"--{option} '{key}' has a value longer than 255 characters", hint=RULES)
    return key, text


def parse_tag(
    text: str | tuple[str, Any], *, option: str = "tag", need_value: bool = True
) -> tuple[str, str | None]:
    """``"key=value"`` or ``("key", "value")`` -> ``("key", "value")``; ``"key"`` ->
    ``("key", None)`` where no value is needed (a filter on any value, or a removal)."""
    if isinstance(text, tuple):
        key, value = text
        if value is None and need_value:
            raise UsageError(f"--{option} '{key}' has no value", hint=f"e.g. --{option} {key}=x")
        return check_tag(key, value, option=option)
    key, sep, value = str(text).partition("=")
    if not sep and need_value:
        raise UsageError(f"--{option} '{text}' is not key=value", hint=f"e.g. --{option} sample=S4")
    if not KEY.fullmatch(key.strip()):
        form = "key=value" if need_value else "key=value or key"
        raise UsageError(f"--{option} '{text}' is not {form}", hint=RULES)
    return check_tag(key, value if sep else None, option=option)


def parse_tags(
    tags: Tags | None, *, option: str = "tag", need_value: bool = True
) -> list[tuple[str, str | None]]:
    """Every tag in ``tags``: a mapping, a string, a ``(key, value)`` pair, or a list of
    strings and pairs (a tuple of two items whose first has no ``=`` is one pair)."""
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        return [parse_tag((k, v), option=option, need_value=need_value) for k, v in tags.items()]
    if isinstance(tags, str) or _is_pair(tags):
        return [parse_tag(tags, option=option, need_value=need_value)]  # type: ignore[arg-type]
    return [parse_tag(item, option=option, need_value=need_value) for item in tags]


def run_tags(tags: Tags | None, *, option: str = "tag") -> dict[str, str]:
    """Tags for a run: each key once (the same key with two values is refused)."""
    found: dict[str, str] = {}
    for key, value in parse_tags(tags, option=option):
        assert value is not None
        if found.get(key, value) != value:
            raise UsageError(f"--{option} '{key}' given twice with different values")
        found[key] = value
    return found


def _is_pair(tags: Any) -> bool:
    return isinstance(tags, tuple) and len(tags) == 2 and "=" not in str(tags[0])
