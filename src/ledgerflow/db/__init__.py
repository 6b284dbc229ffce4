"""Models, sessions and helpers for the project's databases.

The names are imported on first use, so a module that needs only the engines (or the
plugins) does not load SQLAlchemy's ORM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledgerflow._lazy import lazy_names

if TYPE_CHECKING:
    from ledgerflow.db.database import Database
    from ledgerflow.db.helpers import (
        Helpers,
        Page,
        bulk_insert,
        find,
        get_or_create,
        paginate,
        update,
        upsert,
    )
    from ledgerflow.db.model import Model, ModelQuery, snake_case
    from ledgerflow.db.naming import NAMING_CONVENTION
    from ledgerflow.db.session import RoutingSession, query_session

#: public name -> the module that defines it
_HOMES: dict[str, str] = {
    "NAMING_CONVENTION": "ledgerflow.db.naming",
    "Database": "ledgerflow.db.database",
    "Helpers": "ledgerflow.db.helpers",
    "Model": "ledgerflow.db.model",
    "ModelQuery": "ledgerflow.db.model",
    "Page": "ledgerflow.db.helpers",
    "RoutingSession": "ledgerflow.db.session",
    "bulk_insert": "ledgerflow.db.helpers",
    "find": "ledgerflow.db.helpers",
    "get_or_create": "ledgerflow.db.helpers",
    "paginate": "ledgerflow.db.helpers",
    "query_session": "ledgerflow.db.session",
    "snake_case": "ledgerflow.db.model",
    "update": "ledgerflow.db.helpers",
    "upsert": "ledgerflow.db.helpers",
}

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "Helpers",
    "Model",
    "ModelQuery",
    "Page",
    "RoutingSession",
    "bulk_insert",
    "find",
    "get_or_create",
    "paginate",
    "query_session",
    "snake_case",
    "update",
    "upsert",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)

