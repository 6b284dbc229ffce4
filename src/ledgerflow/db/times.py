"""Times as the ledger stores them: UTC, with no offset on SQLite.

Every timestamp the ledger writes is UTC; SQLite keeps it without an offset, so a naive
datetime read back is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def database_now(conn: Connection | Session) -> datetime:
    """Now by the database's clock (aware UTC): the clock PostgreSQL writes heartbeats with,
    so an age measured against it does not depend on the reader's clock. On SQLite, the
    clock of the machine holding the file (to the second)."""
    from sqlalchemy import DateTime, func, select

    now: Any = conn.execute(select(func.current_timestamp(type_=DateTime(timezone=True)))).scalar_one()
    return utc(now)


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


def format_duration(seconds: float | None) -> str:
    """A duration as people read it: ``0.42 s``, ``12.3 s``, ``4m 05s``, ``2h 07m`` (``""`` if None)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
