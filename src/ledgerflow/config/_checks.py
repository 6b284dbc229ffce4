"""Shape and type checks for the configuration tree.

Each check takes a value and its :class:`Where` and returns the checked value or raises a
``ConfigError`` that names the file and key path. Messages never echo free-form values.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ledgerflow.config._yaml import Interpolated, Where
from ledgerflow.config.settings import REDACTED

SECRET_KEY = re.compile(r"password|passwd|secret|token|^pwd$|^pass$|api_?key", re.IGNORECASE)
Check = Callable[[Any, Where], Any]


class Masked(str):
    """A secret option value: usable as a ``str``, shown as ``'***'`` by ``repr``."""

    def __repr__(self) -> str:
        return repr(REDACTED)


def mask(key: str, value: Any) -> Any:
    return Masked(value) if isinstance(value, str) and SECRET_KEY.search(key) else value


def type_name(value: object) -> str:
    names = {type(None): "null", bool: "boolean", int: "integer", float: "number"}
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return names.get(type(value), type(value).__name__)


def string(value: Any, where: Where, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise where.error(f"expected {what}, got {type_name(value)}")
    return str(value)


def integer(value: Any, where: Where, minimum: int) -> int:
    if isinstance(value, Interpolated) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        got = type_name(value) if not isinstance(value, int) or isinstance(value, bool) else value
        raise where.error(f"expected an integer >= {minimum}, got {got}")
    return value


_BOOLS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"false": False, "no": False, "off": False, "0": False}


def boolean(value: Any, where: Where) -> bool:
    if isinstance(value, Interpolated) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    if not isinstance(value, bool):
        raise where.error(f"expected a boolean (true or false), got {type_name(value)}")
    return value


def choice(value: Any, where: Where, allowed: tuple[str, ...], what: str) -> str:
    text = string(value, where)
    if text not in allowed:
        close = difflib.get_close_matches(text, allowed, n=1)
        raise where.error(
            f"unknown {what} {text!r}, expected one of: {', '.join(allowed)}",
            hint=f"did you mean {close[0]!r}?" if close else None,
        )
    return text


def path_text(value: Any, where: Where) -> str:
    """A non-empty path, written as a string (or given as a path object from code)."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else string(value, where, "a path")
    if not text:
        raise where.error("expected a path, got an empty string")
    return str(text)


def seconds(value: Any, where: Where, minimum: float) -> float:
    """A number of seconds (an integer or a decimal number) of at least ``minimum``."""
    if isinstance(value, Interpolated) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*", value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        got = type_name(value) if isinstance(value, bool) or not isinstance(value, int | float) else value
        raise where.error(f"expected a number of seconds >= {minimum:g}, got {got}")
    return float(value)


def seconds_from(minimum: float) -> Check:
    """A :func:`seconds` check with a lower bound."""
    return lambda value, where: seconds(value, where, minimum)


def integer_from(minimum: int) -> Check:
    """An :func:`integer` check with a lower bound."""
    return lambda value, where: integer(value, where, minimum)


def choice_of(allowed: tuple[str, ...], what: str) -> Check:
    """A :func:`choice` check over ``allowed``."""
    return lambda value, where: choice(value, where, allowed, what)


def mapping(value: Any, where: Where) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping, got {type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise where.error(f"expected string keys, got a key of type {type_name(key)}")
    return value


def known_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: Where) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            raise where.child(key).error(
                f"unknown key, allowed keys: {', '.join(allowed)}",
                hint=f"did you mean {close[0]!r}?" if close else None,
            )


def required(data: Mapping[str, Any], key: str, where: Where) -> Any:
    if key not in data:
        raise where.child(key).error("required key is missing")
    if data[key] is None:
        raise where.child(key).error("expected a value, got null")
    return data[key]


def optional(data: Mapping[str, Any], key: str, where: Where, check: Check, default: Any) -> Any:
    """``check(value, where)`` for a key that is present and not null, else ``default``."""
    value = data.get(key)
    return default if value is None else check(value, where.child(key, value))


def section(value: Any, where: Where, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    data = mapping({} if value is None else value, where)
    known_keys(data, allowed, where)
    return data


def absolute(text: str, base: Path) -> Path:
    if text == ":memory:":
        return Path(text)
    return Path(os.path.abspath(base / Path(text).expanduser()))
