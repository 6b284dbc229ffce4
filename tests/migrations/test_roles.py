"""PostgreSQL roles: migrations run as admin, the user role gets rows but no DDL (real server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ledgerflow import migrations
from ledgerflow.errors import MigrationError
from ledgerflow.testing.postgres import PgDatabase
from ledgerflow.testing.projects import make_project, write_plugin

NOTES = """
from sqlalchemy import Column, Integer, Text
from ledgerflow.db import Model

class Note(Model):
    id = Column(Integer, primary_key=True)
    text = Column(Text, nullable=False)
"""


def _without_default_privileges(database: PgDatabase) -> None:
    """Undo the fixture's ALTER DEFAULT PRIVILEGES: only our GRANTs may give the user rights."""
    admin, user = sql.Identifier(database.admin_name), sql.Identifier(database.user_name)
    with database.connect("admin") as conn:
        conn.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {}"
            ).format(admin, user)
        )
        conn.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "REVOKE USAGE, SELECT ON SEQUENCES FROM {}"
            ).format(admin, user)
        )


REFUSED = [
    "DROP TABLE note",
    "ALTER TABLE note ADD COLUMN extra integer",
    "TRUNCATE note",
    "CREATE TABLE intruder (id integer)",
    "CREATE INDEX ix_note_text ON note (text)",
    "UPDATE alembic_version SET version_num = 'x'",
    "DELETE FROM alembic_version",
]


def test_user_role_reads_and_writes_rows_but_no_ddl(
    tmp_path: Path, pg_database: PgDatabase, fresh_models: None
) -> None:
    _without_default_privileges(pg_database)
    write_plugin(tmp_path, "notes", NOTES)
    settings = make_project(tmp_path, pg_database.config_entry(), plugins=["notes"])
    migrations.upgrade(settings)
    migrations.make_migrations(settings, "notes", "notes")
    migrations.upgrade(settings)

    with pg_database.connect("user") as conn:
        conn.execute("INSERT INTO note (text) VALUES ('by user')")  # serial: needs the sequence
        conn.execute("UPDATE note SET text = 'edited' WHERE text = 'by user'")
        assert conn.execute("SELECT text FROM note").fetchall() == [("edited",)]
        conn.execute("INSERT INTO lf_configuration (hash, yaml, created_at) VALUES ('h', 'y', now())")
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (2,)
        for statement in REFUSED:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute("DELETE FROM note")


def test_upgrade_without_admin_says_what_is_missing(tmp_path: Path, pg_database: PgDatabase) -> None:
    entry: dict[str, Any] = pg_database.config_entry()
    del entry["admin"]
    settings = make_project(tmp_path, entry)

    with pytest.raises(MigrationError) as error:
        migrations.upgrade(settings)

    message = str(error.value)
    assert "databases.default.admin is not set" in message and str(settings.path) in message
    assert pg_database.user_password not in message
