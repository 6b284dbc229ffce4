"""Migrations of the framework's ledger tables and of the plugins' tables (Alembic underneath)."""

from ledgerflow.migrations.autogen import check, make_migrations
from ledgerflow.migrations.results import NewRevision, RevisionInfo, Step
from ledgerflow.migrations.runner import downgrade, stamp, upgrade
from ledgerflow.migrations.status import current, ensure_current, history

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
