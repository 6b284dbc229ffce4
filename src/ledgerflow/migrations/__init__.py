"""Migrations of the framework's ledger tables and of the plugins' tables (Alembic underneath).

The names are imported on first use: :func:`ensure_current`, which runs before every
command, does not load Alembic (see :mod:`ledgerflow.migrations.heads`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledgerflow._lazy import lazy_names

if TYPE_CHECKING:
    from ledgerflow.migrations.autogen import check, make_migrations
    from ledgerflow.migrations.heads import ensure_current
    from ledgerflow.migrations.results import NewRevision, RevisionInfo, Step
    from ledgerflow.migrations.runner import downgrade, stamp, upgrade
    from ledgerflow.migrations.status import current, history

#: public name -> the module that defines it
_HOMES: dict[str, str] = {
    "NewRevision": "ledgerflow.migrations.results",
    "RevisionInfo": "ledgerflow.migrations.results",
    "Step": "ledgerflow.migrations.results",
    "check": "ledgerflow.migrations.autogen",
    "current": "ledgerflow.migrations.status",
    "downgrade": "ledgerflow.migrations.runner",
    "ensure_current": "ledgerflow.migrations.heads",
    "history": "ledgerflow.migrations.status",
    "make_migrations": "ledgerflow.migrations.autogen",
    "stamp": "ledgerflow.migrations.runner",
    "upgrade": "ledgerflow.migrations.runner",
}

__all__ = [
    "NewRevision",
    "RevisionInfo",
    "Step",
    "check",
    "current",
    "downgrade",
    "ensure_current",
    "history",
    "make_migrations",
    "stamp",
    "upgrade",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)

