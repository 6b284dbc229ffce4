"""Engines per bind and role, with each dialect set up the way ledgerflow needs it.

SQLite: WAL journal, a busy timeout, foreign keys on, and transactions that we begin
ourselves (``BEGIN IMMEDIATE`` for writers), so that savepoints work and two processes
racing on the same key wait for each other instead of failing. Read-only engines open the
file read-only (``mode=ro``) and never change it, so a read-only ledger can be read; they
never create a missing file either: until it exists it reads as an empty database.
PostgreSQL: psycopg 3; the *user* role at run time, the *admin* role for migrations.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from ledgerflow.config.settings import DatabaseConfig, hide_url_passwords
from ledgerflow.db.driver import SQLITE_BUSY_TIMEOUT_MS as SQLITE_BUSY_TIMEOUT_MS
from ledgerflow.db.driver import Absent as _Absent
from ledgerflow.db.driver import sqlite_reader as _sqlite_reader
from ledgerflow.errors import ConfigError, ConnectionFailedError, MigrationError, MissingExtraError

Role = Literal["user", "admin"]


def database_url(db: DatabaseConfig, role: Role = "user") -> URL:
    """The SQLAlchemy URL of a bind for a role (carries the password: never print it)."""
    if db.dialect == "sqlite":
        return URL.create("sqlite+pysqlite", database=str(db.path))
    creds = db.credentials(role)
    if creds is None:
        if role == "admin":
            raise MigrationError(
                f"{db.source}: databases.{db.name}.admin is not set: migrations of "
                f"{db.describe()} run with the admin role",
                hint=f"add 'admin: NAME:PASSWORD' under databases.{db.name} in {db.source}",
            )
        raise ConfigError(
            f"{db.source}: databases.{db.name}: neither 'user' nor 'admin' is set",
            hint="add 'user: NAME:PASSWORD'",
        )
    return URL.create(
        "postgresql+psycopg",
        username=creds.username,
        password=creds.password,
        host=db.host,
        port=db.port,
        database=db.database,
        query=dict(db.options),
    )


def create_bind_engine(
    db: DatabaseConfig, role: Role = "user", *, read_only: bool = False, **kwargs: Any
) -> Engine:
    """A new engine for one bind and role."""
    url = database_url(db, role)
    if db.dialect == "sqlite":
        if read_only:
            kwargs.setdefault("creator", _sqlite_reader(str(db.path)))
        engine = create_engine(url, **kwargs)
        if read_only:
            _replace_stand_ins(engine, str(db.path))
        _setup_sqlite(engine, begin="DEFERRED" if read_only else "IMMEDIATE", read_only=read_only)
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("PostgreSQL databases", "postgres", "psycopg") from exc
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("connect_args", {"connect_timeout": 10})
        engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        if context.connection is None and not context.is_pre_ping:
            raise connection_error(db, role, context.original_exception) from None

    return engine


def _replace_stand_ins(engine: Engine, path: str) -> None:
    """Once the file exists, a pooled stand-in is dropped and the file opened instead."""

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_connection, _Absent) and os.path.exists(path):
            raise DisconnectionError("the ledger file has been created since")


def _setup_sqlite(engine: Engine, begin: str, *, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if not read_only:  # the journal mode is the writers' to set
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", begin)
        conn.exec_driver_sql(f"BEGIN {mode}")


def scrub(text: str, *secrets: str | None) -> str:
    """Remove passwords (given ones and any ``user:password@`` in URLs) from a message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return hide_url_passwords(text)


def connection_error(db: DatabaseConfig, role: Role, exc: BaseException) -> ConnectionFailedError:
    """A one-line error for a bind that cannot be reached or refused the login."""
    creds = db.credentials(role)
    password = creds.password if creds else None
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    detail = scrub(reason[0] if reason else type(exc).__name__, password)
    who = f" as '{creds.username}'" if creds else ""
    return ConnectionFailedError(
        f"cannot connect to database '{db.name}' ({db.describe()}){who}: {detail}",
        hint=f"check databases.{db.name} in {db.source}"
        + (" and that its directory exists" if db.dialect == "sqlite" else " and that the server is running"),
    )


def redacted_url(url: URL | str) -> str:
    return make_url(url).render_as_string(hide_password=True)
