"""A bare DB-API connection to one bind, without SQLAlchemy: for commands that only read a
little and must start fast (``ledgerflow runs``).

SQLite through ``sqlite3``, opened read-only the way the read-only engines open it
(:func:`sqlite_reader`); PostgreSQL through psycopg 3 with the bind's runtime role. The
connection reads inside one transaction, so the queries of a command see one state of the
ledger. Times come back as datetimes on both (naive UTC on SQLite, as the ledger stores
them). Anything unusual (a SQLite file that does not exist yet, a driver that is not
installed, a server that refuses us) is left to the SQLAlchemy path, which reports it:
:func:`connect` then returns None.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ledgerflow.config.settings import DatabaseConfig

SQLITE_BUSY_TIMEOUT_MS = 60_000


class Absent(sqlite3.Connection):
    """An empty in-memory stand-in for a SQLite ledger file that does not exist yet."""


def sqlite_reader(path: str) -> Any:
    """Connections that only read: ``mode=ro``, so a ledger on a read-only file or directory
    can be read. A WAL ledger in a directory we may not write has no shared-memory file we
    could create; it is then opened ``immutable`` (nobody can be writing it either)."""
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"

    def connect() -> sqlite3.Connection:
        if not os.path.exists(path):  # a reader never creates the file: it reads as empty
            return sqlite3.connect(":memory:", check_same_thread=False, factory=Absent)
        try:
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # opens the WAL index
            return connection
        except sqlite3.OperationalError:
            folder = os.path.dirname(os.path.abspath(path))
            if os.access(folder, os.W_OK):
                raise
            return sqlite3.connect(f"{uri}&immutable=1", uri=True, check_same_thread=False)

    return connect


class DriverConnection:
    """One open DB-API connection, with the bind's placeholder style."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        #: The placeholder of one parameter in :meth:`rows`'s SQL.
        self.mark = "?" if dialect == "sqlite" else "%s"

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.raw.cursor()
        try:
            cursor.execute(sql, tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def time_param(self, moment: datetime) -> Any:
        """A UTC moment as the bind compares it with stored times (text on SQLite)."""
        if self.dialect == "sqlite":
            return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return moment

    def time(self, value: Any) -> datetime | None:
        """A stored time as a datetime (SQLite keeps UTC text without an offset)."""
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(str(value)).replace(tzinfo=None)

    def close(self) -> None:
        try:
            self.raw.rollback()  # reads only: end the transaction
        finally:
            self.raw.close()


def connect(db: DatabaseConfig) -> DriverConnection | None:
    """A read-only connection of the bind's runtime role, in a transaction; None when the
    SQLAlchemy path must handle the bind (see the module's docstring)."""
    if db.dialect == "sqlite":
        return _sqlite(db)
    if db.dialect == "postgresql":
        return _postgres(db)
    return None


def _sqlite(db: DatabaseConfig) -> DriverConnection | None:
    path = str(db.path)
    if not os.path.exists(path):
        return None
    try:
        raw = sqlite_reader(path)()
        raw.isolation_level = None  # transactions are begun here, as the engines do
        raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        raw.execute("BEGIN DEFERRED")
    except sqlite3.Error:
        return None
    return DriverConnection(raw, "sqlite")


def _postgres(db: DatabaseConfig) -> DriverConnection | None:
    creds = db.credentials("user")
    if creds is None:
        return None
    try:
        import psycopg
    except ImportError:
        return None
    keywords: dict[str, Any] = {
        "host": db.host, "port": db.port, "dbname": db.database, "user": creds.username,
        "password": creds.password, "connect_timeout": 10, **db.options,
    }
    try:
        raw = psycopg.connect(**keywords)
    except psycopg.Error:
        return None
    return DriverConnection(raw, "postgresql")
