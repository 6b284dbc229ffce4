"""What a user types to filter the ledger (statuses, tag filters, time windows, globs),
parsed and checked without SQL.

:mod:`ledgerflow.provenance.query` turns these into SQLAlchemy conditions; the driver-only
listing of runs (:mod:`ledgerflow.provenance.fastlist`) into plain SQL. Every bad input is a
:class:`~ledgerflow.errors.UsageError` naming the option.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from ledgerflow.errors import UsageError
from ledgerflow.ledger import tags as tag_rules

TimeLike = datetime | date | str
TagFilter = tag_rules.Tags

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_SPAN_FULL = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[wdhms]\s*)+", re.IGNORECASE)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
TIME_FORMS = "a span like 30m, 3h, 2d, 1w (ago), or a date/time like 2026-11-01 or 2026-11-01T08:30"


def parse_time(value: TimeLike, *, option: str = "since", now: datetime | None = None) -> datetime:
    """A moment in UTC from a datetime, a date, ``"2d"`` (ago) or an ISO date/time.

    Naive datetimes and dates are taken in the local time zone.
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.astimezone()
        return moment.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).astimezone().astimezone(UTC)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"--{option}: expected {TIME_FORMS}, got {value!r}")
    text = value.strip()
    if _SPAN_FULL.fullmatch(text):
        span = timedelta()
        for amount, unit in _SPAN.findall(text):
            span += timedelta(**{_UNITS[unit.lower()]: float(amount)})
        return (now or datetime.now(UTC)) - span
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text else text)
    except ValueError:
        raise UsageError(
            f"--{option}: cannot read {value!r} as a time", hint=f"use {TIME_FORMS}"
        ) from None
    return parse_time(moment, option=option)


def parse_statuses(value: str | Iterable[str] | None, allowed: tuple[str, ...], *, option: str = "status") -> tuple[str, ...]:
    """``"failed"``, ``"failed,skipped"`` or a list of them, each checked against ``allowed``."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [v for item in value for v in str(item).split(",")]
    statuses = tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))
    for status in statuses:
        if status not in allowed:
            raise UsageError(
                f"--{option}: unknown status {status!r}", hint=f"use one of {', '.join(allowed)}"
            )
    return statuses


def parse_tags(value: TagFilter | None, *, option: str = "tag") -> list[tuple[str, str | None]]:
    """Every tag filter in ``value``: ``key=value``, or ``key`` for any value."""
    return tag_rules.parse_tags(value, option=option, need_value=False)


def glob_to_like(pattern: str) -> str:
    """A shell glob (``*``, ``?``) as a SQL LIKE pattern escaped with ``\\``."""
    out = []
    for char in pattern:
        if char in "%_\\":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def task_patterns(name: str) -> tuple[str | None, list[str]]:
    """How a task filter matches a task name: the exact name (None for a glob) and LIKE
    patterns escaped with ``\\`` (the last part of a dotted or ``module:task`` name, or
    the glob)."""
    if "*" in name or "?" in name:
        return None, [glob_to_like(name)]
    escaped = glob_to_like(name)
    return name, ["%." + escaped, "%:" + escaped]


def check_page(limit: int | None, offset: int) -> tuple[int | None, int]:
    """``limit`` and ``offset`` after checking them (``--limit``, ``--offset``)."""
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise UsageError(f"--limit must be a positive number, got {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise UsageError(f"--offset must be zero or more, got {offset!r}")
    return limit, offset
