"""The database fixtures of ``ledgerflow.testing``: fresh databases, roles, CI guard."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml
from psycopg import errors

from ledgerflow.errors import DatabaseError
from ledgerflow.testing import cluster, postgres
from ledgerflow.testing.cluster import start_throwaway_cluster
from ledgerflow.testing.databases import TestDatabase, sqlite_database
from ledgerflow.testing.postgres import PgDatabase, PgServer, find_server


def entry_url(entry: dict[str, Any], role: str) -> str:
    """The SQLAlchemy URL a ``ledgerflow.yml`` entry describes, built the way a user would."""
    if entry["dialect"] == "sqlite":
        return f"sqlite:///{entry['path']}"
    return f"postgresql+psycopg://{entry[role]}@{entry['address']}/{entry['database']}"


# --------------------------------------------------------------------------- both dialects


def test_database_entry_is_fresh_and_usable(database_entry: dict[str, Any]) -> None:
    admin = sa.create_engine(entry_url(database_entry, "admin"))
    user = sa.create_engine(entry_url(database_entry, "user"))
    try:
        assert sa.inspect(admin).get_table_names() == []
        with admin.begin() as conn:
            conn.execute(sa.text("CREATE TABLE sample (id INTEGER PRIMARY KEY, label TEXT)"))
        with user.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO sample (id, label) VALUES (:id, :label)"),
                [{"id": 1, "label": "one"}, {"id": 2, "label": "two"}],
            )
        with user.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, label FROM sample ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [(1, "one"), (2, "two")]
    finally:
        admin.dispose()
        user.dispose()


def test_fresh_database_url_matches_entry(
    fresh_database: TestDatabase, database_entry: dict[str, Any]
) -> None:
    assert fresh_database.config_entry() == database_entry
    for role in ("admin", "user"):
        assert fresh_database.url(role) == entry_url(database_entry, role)


def test_project_dir_writes_config(project_dir: Path, database_entry: dict[str, Any]) -> None:
    config = yaml.safe_load((project_dir / "ledgerflow.yml").read_text(encoding="utf-8"))
    assert config == {"databases": {"default": database_entry}}


def test_sqlite_database_entry(tmp_path: Path) -> None:
    assert sqlite_database(tmp_path) == {"dialect": "sqlite", "path": str(tmp_path / "ledger.db")}


# --------------------------------------------------------------------------- PostgreSQL


def test_config_entry_shape(pg_database: PgDatabase) -> None:
    entry = pg_database.config_entry()
    assert entry == {
        "dialect": "postgresql",
        "address": f"{pg_database.host}:{pg_database.port}",
        "database": pg_database.name,
        "admin": f"{pg_database.admin_name}:{pg_database.admin_password}",
        "user": f"{pg_database.user_name}:{pg_database.user_password}",
    }
    assert pg_database.name.startswith("lf_test_")
    assert pg_database.admin_password not in repr(pg_database)
    assert pg_database.user_password not in repr(pg_database)


def test_database_is_owned_by_admin(pg_database: PgDatabase, pg_server: PgServer) -> None:
    with pg_server.connect() as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            [pg_database.name],
        ).fetchone()
    assert owner == (pg_database.admin_name,)


def test_drop_removes_database_and_roles_despite_open_session(pg_server: PgServer) -> None:
    database = pg_server.create_database(prefix="lf_drop")
    lingering = database.connect("user")
    try:
        database.drop()
    finally:
        lingering.close()
    database.drop()  # idempotent
    with pg_server.connect() as conn:
        assert conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database.name]
        ).fetchone() is None
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
            [[database.admin_name, database.user_name]],
        ).fetchall()
    assert roles == []


def test_user_cannot_connect_to_another_test_database(
    pg_database: PgDatabase, pg_server: PgServer
) -> None:
    other = pg_server.create_database()
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(
                host=other.host, port=other.port, dbname=other.name,
                user=pg_database.user_name, password=pg_database.user_password,
            )
    finally:
        other.drop()


@pytest.fixture(scope="module")
def roles_db(pg_server: PgServer) -> Iterator[PgDatabase]:
    """One database for the role tests, with a table made by the admin role."""
    database = pg_server.create_database(prefix="lf_roles")
    with database.connect("admin") as conn:
        conn.execute(
            "CREATE TABLE item (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
            " qty INTEGER NOT NULL DEFAULT 0)"
        )
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def user_conn(roles_db: PgDatabase) -> Iterator[psycopg.Connection[Any]]:
    with roles_db.connect("user") as conn:
        yield conn


def unique_name() -> str:
    return uuid.uuid4().hex


def test_user_inserts_with_serial_and_selects(user_conn: psycopg.Connection[Any]) -> None:
    name = unique_name()
    row = user_conn.execute(
        "INSERT INTO item (name, qty) VALUES (%s, 1) RETURNING id", [name]
    ).fetchone()
    assert row is not None and isinstance(row[0], int)
    assert user_conn.execute("SELECT qty FROM item WHERE id = %s", [row[0]]).fetchone() == (1,)


def test_user_updates_and_deletes(user_conn: psycopg.Connection[Any]) -> None:
    name = unique_name()
    user_conn.execute("INSERT INTO item (name) VALUES (%s)", [name])
    assert user_conn.execute("UPDATE item SET qty = 7 WHERE name = %s", [name]).rowcount == 1
    assert user_conn.execute("SELECT qty FROM item WHERE name = %s", [name]).fetchone() == (7,)
    assert user_conn.execute("DELETE FROM item WHERE name = %s", [name]).rowcount == 1
    assert user_conn.execute("SELECT 1 FROM item WHERE name = %s", [name]).fetchone() is None


def test_user_upserts(user_conn: psycopg.Connection[Any]) -> None:
    name = unique_name()
    upsert = (
        "INSERT INTO item (name, qty) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET qty = item.qty + EXCLUDED.qty"
    )
    user_conn.execute(upsert, [name, 2])
    user_conn.execute(upsert, [name, 3])
    assert user_conn.execute("SELECT qty FROM item WHERE name = %s", [name]).fetchone() == (5,)
    user_conn.execute(
        "INSERT INTO item (name) VALUES (%s) ON CONFLICT DO NOTHING", [name]
    )
    assert user_conn.execute("SELECT qty FROM item WHERE name = %s", [name]).fetchone() == (5,)


def test_user_copies_in_and_out(user_conn: psycopg.Connection[Any]) -> None:
    prefix = unique_name()
    rows = [(f"{prefix}-{i}", i) for i in range(100)]
    with user_conn.cursor() as cur:
        with cur.copy("COPY item (name, qty) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        out: list[tuple[Any, ...]] = []
        with cur.copy(
            "COPY (SELECT name, qty FROM item WHERE name LIKE %s ORDER BY qty) TO STDOUT",
            [f"{prefix}-%"],
        ) as copy:
            copy.set_types(["text", "int4"])
            out.extend(copy.rows())
    assert out == rows


def test_user_writes_tables_admin_creates_later(roles_db: PgDatabase) -> None:
    table = f"later_{unique_name()[:8]}"
    with roles_db.connect("admin") as admin:
        admin.execute(f"CREATE TABLE {table} (id BIGINT GENERATED ALWAYS AS IDENTITY, v TEXT)")
    with roles_db.connect("user") as user:
        user.execute(f"INSERT INTO {table} (v) VALUES ('x'), ('y')")
        assert user.execute(f"SELECT count(*) FROM {table}").fetchone() == (2,)


REFUSED_TO_USER = {
    "drop_table": "DROP TABLE item",
    "alter_table": "ALTER TABLE item ADD COLUMN extra INTEGER",
    "rename_table": "ALTER TABLE item RENAME TO renamed_item",
    "rename_column": "ALTER TABLE item RENAME COLUMN qty TO quantity",
    "truncate": "TRUNCATE item",
    "create_table": "CREATE TABLE other (id INTEGER)",
    "create_index": "CREATE INDEX item_qty ON item (qty)",
    "create_temp_table": "CREATE TEMP TABLE scratch (id INTEGER)",
    "create_schema": "CREATE SCHEMA mine",
    "setval": "SELECT setval('item_id_seq', 1000)",
}


@pytest.mark.parametrize("statement", REFUSED_TO_USER.values(), ids=REFUSED_TO_USER.keys())
def test_user_is_refused_layout_changes(
    user_conn: psycopg.Connection[Any], statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        user_conn.execute(statement)


def test_admin_may_change_layout(roles_db: PgDatabase) -> None:
    with roles_db.connect("admin") as admin:
        admin.execute("CREATE INDEX item_qty_admin ON item (qty)")
        admin.execute("ALTER TABLE item ADD COLUMN note TEXT")
        admin.execute("ALTER TABLE item DROP COLUMN note")
        admin.execute("DROP INDEX item_qty_admin")


# --------------------------------------------------------------------------- finding a server


def test_unreachable_env_server_does_not_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(postgres.ENV_URL, "postgresql://nobody@127.0.0.1:1/x")
    reasons: list[str] = []
    assert find_server(reasons) is None
    assert len(reasons) == 1 and "nobody@127.0.0.1:1" in reasons[0]


def test_invalid_env_url_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(postgres.ENV_URL, "postgresql://[broken")
    reasons: list[str] = []
    assert find_server(reasons) is None
    assert postgres.ENV_URL in reasons[0]


def test_missing_binaries_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(cluster, "DEBIAN_BIN_GLOB", "/nonexistent/*/bin")
    with pytest.raises(DatabaseError, match=r"apt-get install -y postgresql"):
        start_throwaway_cluster()


@pytest.mark.slow
@pytest.mark.postgres
def test_throwaway_cluster_starts_serves_and_stops() -> None:
    try:
        cluster.find_pg_bin_dir()
    except DatabaseError as exc:
        pytest.skip(str(exc))  # turned into a failure under CI=true by the plugin
    throwaway = start_throwaway_cluster()
    try:
        assert throwaway.data_dir.is_dir()
        database = throwaway.create_database()
        with database.connect("user") as conn:
            assert conn.execute("SELECT current_user").fetchone() == (database.user_name,)
        database.drop()
    finally:
        throwaway.stop()
    assert not throwaway.root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=throwaway.host, port=throwaway.port, user="postgres", connect_timeout=2)


# --------------------------------------------------------------------------- CI guard

GUARDED_TESTS = '''
import pytest

def test_needs_server(pg_server):
    pass

def test_entry(database_entry):
    assert database_entry["dialect"] in ("sqlite", "postgresql")

@pytest.mark.postgres
def test_marked_and_skipped():
    pytest.skip("skipped on purpose")
'''


def run_guarded_suite(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_guarded.py").write_text(textwrap.dedent(GUARDED_TESTS), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS"}}
    env[postgres.ENV_URL] = "postgresql://nobody@127.0.0.1:1/x"
    env["LEDGERFLOW_TEST_PG_NO_CLUSTER"] = "1"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ledgerflow.testing.plugin",
         "-p", "no:cacheprovider", "-q", "-rA", "test_guarded.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_without_server_postgres_tests_fail_under_ci(tmp_path: Path) -> None:
    result = run_guarded_suite(tmp_path, ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PostgreSQL is required when CI=true" in result.stdout
    assert "LEDGERFLOW_TEST_PG_NO_CLUSTER" in result.stdout
    assert "skipped while CI=true" in result.stdout
    assert "PASSED test_guarded.py::test_entry[sqlite]" in result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1]


def test_without_server_postgres_tests_skip_outside_ci(tmp_path: Path) -> None:
    result = run_guarded_suite(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 3 skipped" in result.stdout
    assert "no PostgreSQL server" in result.stdout
