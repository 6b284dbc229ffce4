"""A fresh, empty database for one test, on either dialect.

:class:`TestDatabase` is what a test needs to know about its database whatever the
dialect: the ``ledgerflow.yml`` entry that points at it, a SQLAlchemy URL per role, and
how to throw it away. The pytest plugin yields one per test, parametrised over SQLite and
PostgreSQL, so the same test body runs on both.

:func:`migrate_ledger` migrates a database's ledger to the library's head; the plugin does
it once per session and copies the result (:func:`copy_sqlite`, or a PostgreSQL template).
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ledgerflow.testing.postgres import PgDatabase

Role = Literal["admin", "user"]
SQLITE_FILENAME = "ledger.db"
MIGRATED_FILENAME = "migrated-ledger.db"  # beside a fresh ledger.db when a test has both


def sqlite_database(tmp_path: str | Path) -> dict[str, str]:
    """The ``databases:`` entry for a SQLite file inside ``tmp_path`` (created on first use)."""
    return {"dialect": "sqlite", "path": str(Path(tmp_path) / SQLITE_FILENAME)}


class TestDatabase(ABC):
    """A database made for one test; :meth:`drop` removes it."""

    __test__ = False  # not a pytest test class, whatever module imports it

    dialect: str

    @abstractmethod
    def config_entry(self) -> dict[str, Any]:
        """The ``databases:`` entry of ``ledgerflow.yml`` for this database."""

    @abstractmethod
    def url(self, role: Role = "user") -> str:
        """A SQLAlchemy URL connecting as ``role`` (both roles are the same on SQLite)."""

    @abstractmethod
    def drop(self) -> None:
        """Remove the database; safe to call twice."""


class SqliteTestDatabase(TestDatabase):
    dialect = "sqlite"

    def __init__(self, tmp_path: str | Path, filename: str = SQLITE_FILENAME) -> None:
        self.path = Path(tmp_path) / filename

    def config_entry(self) -> dict[str, Any]:
        return {"dialect": "sqlite", "path": str(self.path)}

    def url(self, role: Role = "user") -> str:
        return f"sqlite:///{self.path}"

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"SqliteTestDatabase({str(self.path)!r})"


class PostgresTestDatabase(TestDatabase):
    dialect = "postgresql"

    def __init__(self, database: PgDatabase) -> None:
        self.database = database

    def config_entry(self) -> dict[str, Any]:
        return self.database.config_entry()

    def url(self, role: Role = "user") -> str:
        return self.database.url(role)

    def drop(self) -> None:
        self.database.drop()

    def __repr__(self) -> str:
        return f"PostgresTestDatabase({self.database!r})"


def migrate_ledger(entry: Mapping[str, Any], root: str | Path) -> None:
    """Migrate the ledger of the database ``entry`` (no plugins) to the library's head.

    ``root`` is the project folder the migration runs in; nothing is written there.
    """
    from ledgerflow.config.loader import settings_from_mapping
    from ledgerflow.migrations import upgrade

    settings = settings_from_mapping(
        {"databases": {"default": dict(entry)}}, path=Path(root) / "ledgerflow.yml"
    )
    upgrade(settings)


def copy_sqlite(source: str | Path, target: str | Path) -> None:
    """Copy the SQLite database ``source`` to the new file ``target`` (page by page, so a
    database in WAL mode is copied whole)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
