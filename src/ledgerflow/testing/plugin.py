"""pytest fixtures for testing ledgerflow pipelines on SQLite and PostgreSQL.

Enable it in a ``conftest.py``::

    pytest_plugins = ["ledgerflow.testing.plugin"]

Fixtures:

``pg_session`` (session)
    A :class:`~ledgerflow.testing.pgsession.PgSession` on a PostgreSQL server:
    ``LEDGERFLOW_TEST_PG``, else a local server, else a throwaway cluster (unless
    ``LEDGERFLOW_TEST_PG_NO_CLUSTER=1``). When there is none the test is skipped, or fails
    when ``CI`` is ``true``/``1``. Every database and role the session makes is dropped when
    it ends, also after failures; its names carry a token of their own, so test sessions
    running at the same time on one server never meet.
``pg_server`` (session)
    The session's :class:`~ledgerflow.testing.postgres.PgServer`.
``pg_database``
    A fresh :class:`~ledgerflow.testing.postgres.PgDatabase` with admin and user roles,
    dropped after the test.
``database_dialect``
    ``"sqlite"``, then ``"postgresql"`` (marked ``postgres``): what parametrises the
    fixtures below, so that a test using several of them runs once per dialect.
``fresh_database``
    A fresh, empty :class:`~ledgerflow.testing.databases.TestDatabase` on that dialect.
``database_entry``
    The ``ledgerflow.yml`` entry (a dict) of ``fresh_database``.
``project_dir``
    ``tmp_path`` holding a ``ledgerflow.yml`` whose ``default`` database is ``database_entry``.
``migrated_database``
    Like ``fresh_database``, but its ledger is already migrated to the library's head: a
    copy of a template migrated once per session (a file copy on SQLite, ``CREATE DATABASE
    ... TEMPLATE`` on PostgreSQL, with the test's own admin and user roles).
``migrated_database_entry``
    The ``ledgerflow.yml`` entry of ``migrated_database``.

With ``CI`` set, a test marked ``postgres`` that ends skipped is reported as failed, so a
CI run can never pass without exercising PostgreSQL.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerflow.errors import LedgerflowError
from ledgerflow.testing.cluster import ThrowawayCluster, start_throwaway_cluster
from ledgerflow.testing.databases import (
    MIGRATED_FILENAME,
    PostgresTestDatabase,
    SqliteTestDatabase,
    TestDatabase,
    copy_sqlite,
    migrate_ledger,
)
from ledgerflow.testing.pgsession import PgSession
from ledgerflow.testing.postgres import PgDatabase, PgServer, find_server

NO_CLUSTER_ENV = "LEDGERFLOW_TEST_PG_NO_CLUSTER"
POSTGRES_MARK = "postgres"
#: Fixtures that need PostgreSQL: a test using one is marked ``postgres``.
POSTGRES_FIXTURES = ("pg_session", "pg_server")


def ci_enabled() -> bool:
    """Whether we run in CI, where PostgreSQL tests must run rather than skip."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{POSTGRES_MARK}: needs a PostgreSQL server (found or started by pg_server)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that ask for PostgreSQL directly are PostgreSQL tests too, for the CI guard
    # and for ``-m "not postgres"``.
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in POSTGRES_FIXTURES):
            item.add_marker(POSTGRES_MARK)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and ci_enabled()
        and item.get_closest_marker(POSTGRES_MARK) is not None
    ):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"a PostgreSQL test was skipped while CI=true; PostgreSQL tests must run in CI "
            f"(skip reason: {reason})"
        )
    return report


@pytest.fixture(scope="session")
def pg_session() -> Iterator[PgSession]:
    """The test session's databases on a PostgreSQL server; all dropped when it ends."""
    reasons: list[str] = []
    server = find_server(reasons)
    cluster: ThrowawayCluster | None = None
    if server is None:
        if _flag(NO_CLUSTER_ENV):
            reasons.append(f"no throwaway cluster ({NO_CLUSTER_ENV} is set)")
        else:
            try:
                server = cluster = start_throwaway_cluster()
            except LedgerflowError as exc:
                reasons.append(str(exc))
    if server is None:
        _unavailable("; ".join(reasons))
        return
    try:
        session = PgSession(server)
        try:
            yield session
        finally:
            session.close()
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.fixture(scope="session")
def pg_server(pg_session: PgSession) -> PgServer:
    """A PostgreSQL server where tests may create databases and roles."""
    return pg_session.server


def _unavailable(reason: str) -> None:
    if ci_enabled():
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason}")


@pytest.fixture
def pg_database(pg_session: PgSession) -> Iterator[PgDatabase]:
    """A fresh PostgreSQL database with its admin and user roles, dropped afterwards."""
    database = pg_session.create_database()
    try:
        yield database
    finally:
        pg_session.release(database)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_dialect(request: pytest.FixtureRequest) -> str:
    """``sqlite``, then ``postgresql``: the dialect of the test's databases."""
    return str(request.param)


def _postgres_database(
    request: pytest.FixtureRequest, template: str | None = None
) -> Iterator[TestDatabase]:
    session: PgSession = request.getfixturevalue("pg_session")
    base = session.template(template, _migrated_template) if template else None
    database = session.create_database(template=base)
    try:
        yield PostgresTestDatabase(database)
    finally:
        session.release(database)


def _migrated_template(database: PgDatabase) -> None:
    with tempfile.TemporaryDirectory(prefix="lf-template-") as root:
        migrate_ledger(database.config_entry(), Path(root))


@pytest.fixture
def fresh_database(
    request: pytest.FixtureRequest, database_dialect: str, tmp_path: Path
) -> Iterator[TestDatabase]:
    """A fresh empty database, once on SQLite and once on PostgreSQL."""
    if database_dialect == "postgresql":
        yield from _postgres_database(request)
        return
    database = SqliteTestDatabase(tmp_path)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite ledger migrated once per session, copied by ``migrated_database``."""
    root = tmp_path_factory.mktemp("ledger-template")
    entry = SqliteTestDatabase(root).config_entry()
    migrate_ledger(entry, root)
    return Path(entry["path"])


@pytest.fixture
def migrated_database(
    request: pytest.FixtureRequest, database_dialect: str, tmp_path: Path
) -> Iterator[TestDatabase]:
    """A database whose ledger is migrated to the head (a copy of a session template)."""
    if database_dialect == "postgresql":
        yield from _postgres_database(request, template="ledger")
        return
    database = SqliteTestDatabase(tmp_path, MIGRATED_FILENAME)
    copy_sqlite(request.getfixturevalue("_migrated_sqlite_template"), database.path)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def database_entry(fresh_database: TestDatabase) -> dict[str, Any]:
    """The ``ledgerflow.yml`` entry of a fresh database (SQLite, then PostgreSQL)."""
    return fresh_database.config_entry()


@pytest.fixture
def migrated_database_entry(migrated_database: TestDatabase) -> dict[str, Any]:
    """The ``ledgerflow.yml`` entry of a migrated database (SQLite, then PostgreSQL)."""
    return migrated_database.config_entry()


@pytest.fixture
def project_dir(tmp_path: Path, database_entry: dict[str, Any]) -> Path:
    """A directory with a ``ledgerflow.yml`` whose ``default`` database is fresh."""
    write_config(tmp_path, database_entry)
    return tmp_path


def write_config(root: Path, entry: dict[str, Any]) -> Path:
    """Write ``root/ledgerflow.yml`` whose ``default`` database is ``entry``; returns its path."""
    path = root / "ledgerflow.yml"
    config = {"databases": {"default": entry}}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
