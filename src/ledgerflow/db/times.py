"""Times as the ledger stores them: UTC, with no offset on SQLite.

Every timestamp the ledger writes is UTC; SQLite keeps it without an offset, so a naive
datetime read back is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


@overload
def utc(moment: datetime) -> datetime: ...
@overload
def utc(moment: None) -> None: ...
def utc(moment: datetime | None) -> datetime | None:
    """An aware UTC datetime; a naive one (as SQLite returns it) is taken to be UTC already."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def naive_utc(moment: datetime) -> datetime:
    """``moment`` in UTC without its offset (how SQLite stores it)."""
    return utc(moment).replace(tzinfo=None)
