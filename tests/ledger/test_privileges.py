"""History is append-only for the user role, enforced by PostgreSQL (real server).

Each statement of the privilege table runs as the user role and as the admin on a migrated
ledger holding rows of both: the user may add to every ledger table and change only its
own runs (and leases); deleting or rewriting anyone's history, values or cache entries,
DDL and the version table are the admin's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow.testing.databases import migrate_ledger
from ledgerflow.testing.pgsession import PgSession
from ledgerflow.testing.postgres import PgDatabase
from ledgerflow.testing.privileges import ROLES, STATEMENTS, expected, measure, seed


@pytest.fixture(scope="module")
def seeded(pg_session: PgSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgDatabase]:
    """One migrated ledger with rows of the user's and of the admin's, for every statement."""
    database = pg_session.create_database("lf_privileges")
    try:
        migrate_ledger(database.config_entry(), tmp_path_factory.mktemp("privileges"))
        seed(database)
        yield database
    finally:
        pg_session.release(database)


@pytest.mark.postgres
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("statement", list(STATEMENTS))
def test_the_server_allows_or_refuses_each_statement(
    seeded: PgDatabase, statement: str, role: str
) -> None:
    (outcome,) = measure(seeded, role, [statement])  # type: ignore[arg-type]
    assert outcome.allowed == expected(role, statement), outcome.line()  # type: ignore[arg-type]


def test_the_table_covers_every_ledger_table(seeded: PgDatabase, tmp_path: Path) -> None:
    with seeded.connect("admin") as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND starts_with(tablename, 'lf_')"
        )}
    for action in ("INSERT", "UPDATE own", "UPDATE other's", "DELETE own", "DELETE other's", "TRUNCATE"):
        assert {t for t in tables if f"{action} {t}" not in STATEMENTS} == set(), action
