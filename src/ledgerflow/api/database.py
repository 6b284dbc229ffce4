"""Creating and evolving the project's databases: what ``ledgerflow db`` calls.

Thin over :mod:`ledgerflow.migrations`, which imports Alembic; it is imported only when one
of these functions runs. Each returns plain dataclasses (``Step``, ``RevisionInfo``,
``NewRevision``, ``DroppedTable``) that print as tables or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledgerflow.config.settings import DEFAULT_BIND

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.migrations.results import DroppedTable, NewRevision, RevisionInfo, Step

__all__ = [
    "DowngradePlan",
    "check",
    "current",
    "downgrade",
    "history",
    "make_migrations",
    "plan_downgrade",
    "stamp",
    "upgrade",
]

@dataclass(frozen=True)
class DowngradePlan:
    """What a downgrade would revert, and the tables it would drop (with their rows)."""

    steps: list[Step]
    dropped: list[DroppedTable]

    @property
    def loses_rows(self) -> bool:
        return any(table.rows for table in self.dropped)


def upgrade(settings: Settings, revision: str = "heads", *, bind: str | None = None) -> list[Step]:
    """Apply migrations up to ``revision`` (default: the head of every branch)."""
    from ledgerflow import migrations

    return migrations.upgrade(settings, revision, bind=bind)


def plan_downgrade(settings: Settings, revision: str, *, bind: str = DEFAULT_BIND) -> DowngradePlan:
    """What :func:`downgrade` to ``revision`` would do; nothing is changed (rolled back)."""
    from ledgerflow.migrations.runner import rehearse_downgrade

    steps, dropped = rehearse_downgrade(settings, revision, bind=bind)
    return DowngradePlan(steps, dropped)


def downgrade(settings: Settings, revision: str, *, bind: str = DEFAULT_BIND) -> list[Step]:
    """Revert migrations down to ``revision``; see :func:`plan_downgrade` for what it drops."""
    from ledgerflow import migrations

    return migrations.downgrade(settings, revision, bind=bind)


def stamp(settings: Settings, revision: str, *, bind: str = DEFAULT_BIND) -> None:
    """Record ``revision`` as applied without running any migration."""
    from ledgerflow import migrations

    migrations.stamp(settings, revision, bind=bind)


def make_migrations(
    settings: Settings, plugin: str, message: str, *, bind: str = DEFAULT_BIND, renames: bool = True
) -> NewRevision:
    """Write the revision that brings ``plugin``'s tables in ``bind`` to its models."""
    from ledgerflow import migrations

    return migrations.make_migrations(settings, plugin, message, bind=bind, renames=renames)


def check(settings: Settings, *, bind: str | None = None) -> list[str]:
    """Every difference between the models/migrations and the databases; ``[]`` when in sync."""
    from ledgerflow import migrations

    return migrations.check(settings, bind=bind)


def history(settings: Settings, *, bind: str | None = None) -> list[RevisionInfo]:
    """The migrations known for each database, newest first within each branch."""
    from ledgerflow import migrations

    return migrations.history(settings, bind=bind)


def current(settings: Settings, *, bind: str | None = None) -> dict[str, list[RevisionInfo]]:
    """The revision each database (and each branch in it) is at."""
    from ledgerflow import migrations

    return migrations.current(settings, bind=bind)
