"""Names shared by the ORM models and the plain SQLAlchemy Core tables (no ORM import).

The naming convention gives constraints names that are stable across dialects (SQLite batch
migrations find them by name); :func:`bind_of` says which database a table lives in.
"""

from __future__ import annotations

from typing import Any

from ledgerflow.config.settings import DEFAULT_BIND

#: Constraint names that are stable across dialects, so SQLite batch migrations can find them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def bind_of(table: Any) -> str:
    """The bind (database name in ``ledgerflow.yml``) a table lives in."""
    return str(table.info.get("bind_key", DEFAULT_BIND))
