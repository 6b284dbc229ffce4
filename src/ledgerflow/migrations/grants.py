"""Data rights for the *user* role on PostgreSQL, granted by the admin after each migration.

Migrations run as the admin role, which owns what they create. The user role pipelines run
with gets SELECT/INSERT/UPDATE/DELETE on the plugins' tables and USAGE/SELECT on the
schema's sequences. On the ledger's own ``lf_`` tables it gets what
:mod:`ledgerflow.ledger.privileges` lists (read and add; update or remove only where row
security narrows it to the role's own runs), and may not write the version table. DDL
(DROP, ALTER, TRUNCATE, CREATE) stays the admin's: PostgreSQL refuses it to a role that
owns nothing and has no CREATE on the schema.
"""

from __future__ import annotations

from sqlalchemy import Connection

from ledgerflow.config.settings import DatabaseConfig
from ledgerflow.ledger.privileges import REAP_FUNCTION, user_rights
from ledgerflow.migrations.branches import LEDGER_PREFIX, VERSION_TABLE

_LEDGER_RELATIONS = """
SELECT c.relname, c.relkind IN ('v', 'm'), c.relrowsecurity
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relkind IN ('r', 'p', 'v', 'm')
  AND starts_with(c.relname, %(prefix)s)
ORDER BY c.relname
"""


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
    relations = connection.exec_driver_sql(_LEDGER_RELATIONS, {"prefix": LEDGER_PREFIX}).all()
    for name, view, row_security in relations:
        table = f"{schema}.{quote(name)}"
        rights = ", ".join(user_rights(name, view=view, row_security=row_security))
        statements += [f"REVOKE ALL ON {table} FROM {user}", f"GRANT {rights} ON {table} TO {user}"]
    if connection.dialect.has_table(connection, VERSION_TABLE):
        statements.append(
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {schema}.{quote(VERSION_TABLE)} FROM {user}"
        )
    reap = connection.exec_driver_sql(
        "SELECT to_regprocedure(%(name)s) IS NOT NULL",
        {"name": f"{schema}.{REAP_FUNCTION}(double precision)"},
    ).scalar_one()
    if reap:
        statements.append(
            f"GRANT EXECUTE ON FUNCTION {schema}.{REAP_FUNCTION}(double precision) TO {user}"
        )
    for statement in statements:
        connection.exec_driver_sql(statement)
    return True
