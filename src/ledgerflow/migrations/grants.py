"""Data rights for the *user* role on PostgreSQL, granted by the admin after each migration.

Migrations run as the admin role, which owns what they create. The user role pipelines run
with gets SELECT/INSERT/UPDATE/DELETE on every table of the schema and USAGE/SELECT on its
sequences, but may not write the version table. DDL (DROP, ALTER, TRUNCATE, CREATE) stays the
admin's: PostgreSQL refuses it to a role that owns nothing and has no CREATE on the schema.
"""

from __future__ import annotations

from sqlalchemy import Connection

from ledgerflow.config.settings import DatabaseConfig
from ledgerflow.migrations.scripts import VERSION_TABLE


def grant_user_role(connection: Connection, db: DatabaseConfig) -> bool:
    """Grant the configured user role data rights; False when there is nothing to grant."""
    if connection.dialect.name != "postgresql" or db.user is None or db.admin is None:
        return False
    if db.user.username == db.admin.username:
        return False
    quote = connection.dialect.identifier_preparer.quote
    user = quote(db.user.username)
    schema = quote(connection.exec_driver_sql("SELECT current_schema()").scalar_one())
    statements = [
        f"GRANT USAGE ON SCHEMA {schema} TO {user}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {user}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {user}",
    ]
    if connection.dialect.has_table(connection, VERSION_TABLE):
        statements.append(
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {schema}.{quote(VERSION_TABLE)} FROM {user}"
        )
    for statement in statements:
        connection.exec_driver_sql(statement)
    return True
