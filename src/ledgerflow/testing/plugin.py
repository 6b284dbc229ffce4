"""pytest fixtures for testing ledgerflow pipelines on SQLite and PostgreSQL.

Enable it in a ``conftest.py``::

    pytest_plugins = ["ledgerflow.testing.plugin"]

Fixtures:

``pg_server`` (session)
    A PostgreSQL server: ``LEDGERFLOW_TEST_PG``, else a local server, else a throwaway
    cluster (unless ``LEDGERFLOW_TEST_PG_NO_CLUSTER=1``). When there is none the test is
    skipped, or fails when ``CI`` is ``true``/``1``.
``pg_database``
    A fresh :class:`~ledgerflow.testing.postgres.PgDatabase` with admin and user roles,
    dropped after the test.
``fresh_database``
    A fresh :class:`~ledgerflow.testing.databases.TestDatabase`, parametrised over
    ``sqlite`` and ``postgresql`` (the latter marked ``postgres``).
``database_entry``
    The ``ledgerflow.yml`` entry (a dict) of ``fresh_database``.
``project_dir``
    ``tmp_path`` holding a ``ledgerflow.yml`` whose ``default`` database is ``database_entry``.

With ``CI`` set, a test marked ``postgres`` that ends skipped is reported as failed, so a
CI run can never pass without exercising PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerflow.errors import LedgerflowError
from ledgerflow.testing.databases import (
    PostgresTestDatabase,
    SqliteTestDatabase,
    TestDatabase,
)
from ledgerflow.testing.postgres import (
    PgDatabase,
    PgServer,
    ThrowawayCluster,
    find_server,
    start_throwaway_cluster,
)

NO_CLUSTER_ENV = "LEDGERFLOW_TEST_PG_NO_CLUSTER"
POSTGRES_MARK = "postgres"


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
        if "pg_server" in getattr(item, "fixturenames", ()):
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
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server where tests may create databases and roles."""
    reasons: list[str] = []
    server = find_server(reasons)
    if server is not None:
        yield server
        return
    if _flag(NO_CLUSTER_ENV):
        reasons.append(f"no throwaway cluster ({NO_CLUSTER_ENV} is set)")
    else:
        try:
            cluster: ThrowawayCluster = start_throwaway_cluster()
        except LedgerflowError as exc:
            reasons.append(str(exc))
        else:
            try:
                yield cluster
            finally:
                cluster.stop()
            return
    _unavailable("; ".join(reasons))


def _unavailable(reason: str) -> None:
    if ci_enabled():
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason}")


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A fresh PostgreSQL database with its admin and user roles, dropped afterwards."""
    database = pg_server.create_database()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    """A fresh empty database, once on SQLite and once on PostgreSQL."""
    database: TestDatabase
    if request.param == "sqlite":
        database = SqliteTestDatabase(tmp_path)
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        database = PostgresTestDatabase(server.create_database())
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def database_entry(fresh_database: TestDatabase) -> dict[str, Any]:
    """The ``ledgerflow.yml`` entry of a fresh database (SQLite, then PostgreSQL)."""
    return fresh_database.config_entry()


@pytest.fixture
def project_dir(tmp_path: Path, database_entry: dict[str, Any]) -> Path:
    """A directory with a ``ledgerflow.yml`` whose ``default`` database is fresh."""
    config = {"databases": {"default": database_entry}}
    (tmp_path / "ledgerflow.yml").write_text(
        yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
    )
    return tmp_path
