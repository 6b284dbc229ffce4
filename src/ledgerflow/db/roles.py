"""Which role an operation connects as, and the one line a role without the right gets.

Pipelines and readers connect as the *user* role. Operations that remove or rewrite what
others recorded (``prune``, ``cache clear``, an ``import`` that would overwrite) are the
admin's on PostgreSQL: they connect as the admin when the bind names one, and otherwise
stop with a :class:`~ledgerflow.errors.PrivilegeError` that says what is missing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from ledgerflow.config.settings import DatabaseConfig
from ledgerflow.db.engines import Role
from ledgerflow.errors import PrivilegeError

#: SQLSTATE of ``insufficient_privilege``, also raised for a row refused by row security.
INSUFFICIENT_PRIVILEGE = "42501"


def operator_role(db: DatabaseConfig) -> Role:
    """The role for an admin operation on ``db``: the admin when it is configured."""
    return "admin" if db.dialect == "postgresql" and db.admin is not None else "user"


def privilege_error(operation: str, db: DatabaseConfig, why: str = "") -> PrivilegeError:
    """The one line for ``operation`` refused to the role ``db`` connects as."""
    creds = db.credentials(operator_role(db))
    role = creds.username if creds is not None else "?"
    if db.admin is None:
        where = f"database '{db.name}' is configured with user '{role}' only"
        hint = f"set admin: NAME:PASSWORD under databases.{db.name} in {db.source}"
    else:
        where = f"database '{db.name}' refused it to role '{role}'"
        hint = f"grant '{role}' the admin's rights, or set databases.{db.name}.admin to the owner"
    return PrivilegeError(
        f"{operation} needs the admin role ({where}){': ' + why if why else ''}", hint=hint
    )


def require(connection: Connection, db: DatabaseConfig, operation: str, table: str, right: str) -> None:
    """Raise :func:`privilege_error` unless the connected role has ``right`` on ``table``."""
    if connection.dialect.name != "postgresql":
        return
    allowed = connection.execute(
        text("SELECT has_table_privilege(:table, :right)"), {"table": table, "right": right}
    ).scalar_one()
    if not allowed:
        raise privilege_error(operation, db, f"the user role may not {right} {table}")


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or the driver error it wraps) is PostgreSQL refusing a privilege."""
    original: Any = getattr(exc, "orig", None) or exc
    return getattr(original, "sqlstate", None) == INSUFFICIENT_PRIVILEGE
