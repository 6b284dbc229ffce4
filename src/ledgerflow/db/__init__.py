"""Models, sessions and helpers for the project's databases."""

from ledgerflow.db.database import Database, RoutingSession
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
from ledgerflow.db.model import NAMING_CONVENTION, Model, snake_case

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "Helpers",
    "Model",
    "Page",
    "RoutingSession",
    "bulk_insert",
    "find",
    "get_or_create",
    "paginate",
    "snake_case",
    "update",
    "upsert",
]
