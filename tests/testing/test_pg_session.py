"""A test session's PostgreSQL databases: migrated templates, batched drops, sweeping."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from ledgerflow.testing.databases import TestDatabase, migrate_ledger
from ledgerflow.testing.pgsession import APPLICATION_NAME, DROP_BATCH, PgSession
from ledgerflow.testing.postgres import SESSION_COMMENT, PgDatabase, PgServer


def rights(database: PgDatabase) -> dict[str, list[tuple[Any, ...]]]:
    """Owners and privileges in ``database``, its own role names written ADMIN and USER."""
    queries = {
        "relations": "SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner),"
        " array(SELECT unnest(c.relacl)::text ORDER BY 1)"
        " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1",
        "schema": "SELECT pg_get_userbyid(nspowner), array(SELECT unnest(nspacl)::text ORDER BY 1)"
        " FROM pg_namespace WHERE nspname = 'public'",
        "defaults": "SELECT pg_get_userbyid(defaclrole), defaclnamespace::regnamespace::text,"
        " defaclobjtype, array(SELECT unnest(defaclacl)::text ORDER BY 1)"
        " FROM pg_default_acl ORDER BY 1, 2, 3",
        "database": "SELECT pg_get_userbyid(datdba), array(SELECT unnest(datacl)::text ORDER BY 1)"
        " FROM pg_database WHERE datname = current_database()",
    }
    def rename(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(database.admin_name, "ADMIN").replace(database.user_name, "USER")
        if isinstance(value, list | tuple):
            return type(value)(rename(item) for item in value)
        return value

    with database.server.connect(database.name) as conn:
        return {key: rename(conn.execute(query).fetchall()) for key, query in queries.items()}  # type: ignore[call-overload]


def exists(server: PgServer, database: str) -> bool:
    with server.connect() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is not None


def roles(server: PgServer, *names: str) -> list[str]:
    with server.connect() as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [list(names)])
        return sorted(row[0] for row in rows)


@pytest.fixture
def session(pg_server: PgServer) -> Iterator[PgSession]:
    """A session of its own (the test suite's session is ``pg_session``)."""
    own = PgSession(pg_server)
    try:
        yield own
    finally:
        own.close()


def test_copy_of_the_migrated_template_is_set_up_like_a_database_migrated_in_place(
    pg_session: PgSession, tmp_path: Path
) -> None:
    in_place = pg_session.create_database()
    template = pg_session.template("ledger", lambda db: migrate_ledger(db.config_entry(), tmp_path))
    copy = pg_session.create_database(template=template)
    try:
        migrate_ledger(in_place.config_entry(), tmp_path)
        expected = rights(in_place)
        assert any(row[0] == "lf_task_run" for row in expected["relations"])
        assert rights(copy) == expected
        with pg_session.server.connect() as conn:
            row = conn.execute(
                "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s",
                [template.name],
            ).fetchone()
        assert row == (True, False)  # nobody connects to it: copying needs it idle
    finally:
        pg_session.release(in_place)
        pg_session.release(copy)


def test_migrated_database_is_at_head_and_only_the_admin_changes_its_layout(
    migrated_database: TestDatabase,
) -> None:
    admin = sa.create_engine(migrated_database.url("admin"))
    user = sa.create_engine(migrated_database.url("user"))
    try:
        assert "lf_task_run" in sa.inspect(admin).get_table_names()
        with user.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO lf_configuration (hash, yaml, created_at) VALUES ('h', 'y', '2026-01-01')"
            ))
        if migrated_database.dialect == "postgresql":
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied|must be owner"):
                with user.begin() as conn:
                    conn.execute(sa.text("ALTER TABLE lf_configuration ADD COLUMN x integer"))
        with admin.begin() as conn:
            conn.execute(sa.text("ALTER TABLE lf_configuration ADD COLUMN x integer"))
    finally:
        admin.dispose()
        user.dispose()


def test_names_and_comments_carry_the_session_token(pg_session: PgSession) -> None:
    database = pg_session.create_database()
    assert f"_{pg_session.token}_" in database.name
    with pg_session.server.connect() as conn:
        comments = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s"
            " UNION ALL SELECT shobj_description(oid, 'pg_authid') FROM pg_roles"
            " WHERE rolname = ANY(%s)",
            [database.name, [database.admin_name, database.user_name]],
        ).fetchall()
    assert comments == [(SESSION_COMMENT.format(token=pg_session.token),)] * 3
    pg_session.release(database)


def test_released_databases_are_dropped_a_batch_at_a_time(session: PgSession) -> None:
    made = [session.create_database() for _ in range(DROP_BATCH + 1)]
    lingering = made[0].connect("user")
    for database in made:
        session.release(database)
    with pytest.raises(psycopg.OperationalError):  # its connections end at once
        lingering.execute("SELECT 1")
    lingering.close()
    # The first batch is being dropped in the background; the last one waits for the next.
    assert exists(session.server, made[-1].name)
    session.close()
    assert not any(exists(session.server, db.name) for db in made)
    names = [name for db in made for name in (db.admin_name, db.user_name)]
    assert roles(session.server, *names) == []


def test_close_drops_what_a_test_made_and_never_dropped(pg_server: PgServer) -> None:
    session = PgSession(pg_server)
    leaked = session.server.create_database(prefix="lf_leak")
    template = session.template("empty", lambda _: None)
    session.close()
    assert not exists(pg_server, leaked.name) and not exists(pg_server, template.name)
    assert roles(pg_server, leaked.admin_name, leaked.user_name, template.admin_name) == []


def test_a_new_session_drops_what_a_killed_one_left_but_not_a_live_ones(
    pg_server: PgServer, session: PgSession
) -> None:
    killed = PgSession(pg_server)
    left = killed.server.create_database(prefix="lf_killed")
    killed._keeper.close()  # what a killed process leaves: its tagged objects, no keeper
    live = session.server.create_database(prefix="lf_live")

    other = PgSession(pg_server)
    try:
        assert not exists(pg_server, left.name)
        assert roles(pg_server, left.admin_name, left.user_name) == []
        assert exists(pg_server, live.name)
    finally:
        other.close()
        killed._pool.shutdown()
    assert exists(pg_server, live.name)  # closing one session leaves the others' alone
    session.release(live)


def test_keeper_connection_is_named_after_the_token(pg_session: PgSession) -> None:
    with pg_session.server.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [APPLICATION_NAME.format(token=pg_session.token)],
        ).fetchone()
    assert row == (1,)


def test_a_role_that_may_create_roles_and_databases_is_enough(
    pg_server: PgServer, tmp_path: Path
) -> None:
    name, password = f"lf_creator_{secrets.token_hex(4)}", secrets.token_hex(12)
    with pg_server.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
    try:
        creator = PgServer(pg_server.host, pg_server.port, name, password=password)
        session = PgSession(creator)
        try:
            template = session.template("ledger", lambda db: migrate_ledger(db.config_entry(), tmp_path))
            copy = session.create_database(template=template)
            with copy.connect("user") as conn:
                conn.execute(
                    "INSERT INTO lf_configuration (hash, yaml, created_at) VALUES ('h', 'y', now())"
                )
            session.release(copy)
        finally:
            session.close()
        assert not exists(pg_server, copy.name) and not exists(pg_server, template.name)
    finally:
        with pg_server.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
