"""One session reaches every bind; SQLite is set up with WAL, FKs and a busy timeout."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import ForeignKey, String, select, text
from sqlalchemy.orm import Mapped, mapped_column

from ledgerflow.config import settings_from_mapping
from ledgerflow.db import Database, Model
from ledgerflow.db.engines import SQLITE_BUSY_TIMEOUT_MS
from ledgerflow.errors import ConnectionFailedError
from ledgerflow.testing.postgres import PgDatabase


def test_session_routes_models_of_two_binds(
    open_db: Callable[..., Database], tmp_path: Path, database_entry: dict[str, Any]
) -> None:
    """default is the test's database (SQLite, then PostgreSQL); catalog a second SQLite file."""

    class Run(Model):
        id: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str] = mapped_column(String(50))

    class Star(Model):
        __bind_key__ = "catalog"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50))

    catalog_path = tmp_path / "catalog.db"
    db = open_db(catalog={"dialect": "sqlite", "path": str(catalog_path)})
    with db.transaction() as session:
        session.add_all([Run(label="nightly"), Star(name="Vega"), Star(name="Deneb")])
    with db.session() as session:
        assert session.scalars(select(Star.name).order_by(Star.name)).all() == ["Deneb", "Vega"]
        assert session.scalars(select(Run.label)).all() == ["nightly"]

    with sqlite3.connect(catalog_path) as raw:
        assert raw.execute("SELECT count(*) FROM star").fetchone() == (2,)
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert "run" not in tables
    default_engine = db.engine("default")
    assert db.engine("catalog") is not default_engine
    assert default_engine.dialect.name == database_entry["dialect"]
    with default_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM run")).scalar() == 1
        assert not sa.inspect(conn).has_table("star")


def test_session_routes_sqlite_and_postgresql(
    open_databases: Callable[[dict[str, dict[str, Any]]], Database],
    tmp_path: Path,
    pg_database: PgDatabase,
) -> None:
    """default on SQLite, a PostgreSQL bind beside it, written and read in one session."""

    class Run(Model):
        id: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str] = mapped_column(String(50))

    class Detection(Model):
        __bind_key__ = "survey"
        id: Mapped[int] = mapped_column(primary_key=True)
        magnitude: Mapped[float]

    db = open_databases(
        {
            "default": {"dialect": "sqlite", "path": str(tmp_path / "ledger.db")},
            "survey": pg_database.config_entry(),
        }
    )
    with db.transaction() as session:
        session.add_all([Run(label="first"), Detection(magnitude=12.5), Detection(magnitude=9.0)])
        session.flush()
        assert session.scalar(select(sa.func.count()).select_from(Detection)) == 2
    with db.session() as session:
        assert session.scalars(select(Detection.magnitude).order_by(Detection.id)).all() == [
            12.5,
            9.0,
        ]
        assert session.scalars(select(Run.label)).all() == ["first"]
    with pg_database.connect("user") as conn:
        assert conn.execute("SELECT count(*) FROM detection").fetchone() == (2,)
        assert conn.execute("SELECT to_regclass('run')").fetchone() == (None,)
    with sqlite3.connect(tmp_path / "ledger.db") as raw:
        assert raw.execute("SELECT label FROM run").fetchall() == [("first",)]


@pytest.fixture
def sqlite_db(tmp_path: Path, clean_models: None) -> Database:
    settings = settings_from_mapping(
        {"databases": {"default": {"dialect": "sqlite", "path": "pragmas.db"}}},
        path=tmp_path / "ledgerflow.yml",
    )
    return Database(settings)


def test_sqlite_pragmas(sqlite_db: Database) -> None:
    with sqlite_db.engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    sqlite_db.dispose()


def test_sqlite_enforces_foreign_keys(sqlite_db: Database) -> None:
    class Owner(Model):
        id: Mapped[int] = mapped_column(primary_key=True)

    class Pet(Model):
        id: Mapped[int] = mapped_column(primary_key=True)
        owner_id: Mapped[int] = mapped_column(ForeignKey("owner.id"))

    Model.metadata.create_all(sqlite_db.engine())
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), sqlite_db.transaction() as s:
        s.add(Pet(id=1, owner_id=42))
    sqlite_db.dispose()


def _pg_settings(tmp_path: Path, entry: dict[str, Any]) -> Any:
    return settings_from_mapping({"databases": {"default": entry}}, path=tmp_path / "x.yml")


def test_unreachable_server_names_host_not_password(tmp_path: Path) -> None:
    entry = {
        "dialect": "postgresql",
        "address": "127.0.0.1:1",
        "database": "nowhere",
        "user": "pipeline:Sup3rSecretPw",
    }
    with Database(_pg_settings(tmp_path, entry)) as db:
        with pytest.raises(ConnectionFailedError) as caught:
            db.check_connection()
        message = str(caught.value)
        assert "127.0.0.1:1" in message and "'pipeline'" in message
        assert "Sup3rSecretPw" not in message
        with pytest.raises(ConnectionFailedError) as caught, db.session() as session:
            session.execute(text("SELECT 1"))
        assert "127.0.0.1" in str(caught.value)
        assert "Sup3rSecretPw" not in str(caught.value)


@pytest.mark.parametrize("what", ["unknown role", "role without login"])
def test_refused_login_names_host_not_password(
    tmp_path: Path, pg_database: PgDatabase, what: str
) -> None:
    """The test server trusts local logins, so the login is refused by a role rule instead."""
    name = "no_such_role_xyz"
    if what == "role without login":
        name = pg_database.user_name
        with pg_database.server.connect() as conn:
            conn.execute(f'ALTER ROLE "{name}" NOLOGIN')
    secret = "Wr0ngPassw0rd-xyz"
    entry = {**pg_database.config_entry(), "user": f"{name}:{secret}"}
    with Database(_pg_settings(tmp_path, entry)) as db, pytest.raises(ConnectionFailedError) as caught:
        db.check_connection()
    message = str(caught.value)
    assert f"{pg_database.host}:{pg_database.port}" in message and f"'{name}'" in message
    assert secret not in message
