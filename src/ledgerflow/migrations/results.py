"""What the migration functions return: plain dataclasses, easy to print or dump as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Direction = Literal["up", "down", "stamp"]


@dataclass(frozen=True)
class Step:
    """One revision applied (``up``), reverted (``down``) or recorded without running (``stamp``)."""

    bind: str
    branch: str
    revision: str
    message: str
    direction: Direction


@dataclass(frozen=True)
class DroppedTable:
    """A table a downgrade would drop, with the rows it holds now."""

    bind: str
    table: str
    rows: int


@dataclass(frozen=True)
class RevisionInfo:
    """A revision known to a database's migration scripts, or found in its version table."""

    bind: str
    branch: str
    revision: str
    down_revision: str | None
    message: str
    is_head: bool
    is_current: bool


@dataclass(frozen=True)
class NewRevision:
    """The outcome of :func:`~ledgerflow.migrations.make_migrations`.

    ``empty`` is true when the models and the database already agree; then no file is
    written and ``path`` is the folder the revision would have gone to. ``warnings`` name
    operations that will fail or lose data on the rows the database holds now.
    """

    path: Path
    revision: str
    branch: str
    operations: list[str] = field(default_factory=list)
    renames: list[str] = field(default_factory=list)
    empty: bool = False
    warnings: list[str] = field(default_factory=list)
