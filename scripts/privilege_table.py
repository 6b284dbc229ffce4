"""Print what the user role and the admin may do to the ledger, measured on a live server.

    python scripts/privilege_table.py              # the server the test suite would use
    python scripts/privilege_table.py --by-table   # the same, one line per ledger table
    LEDGERFLOW_TEST_PG=postgresql://... python scripts/privilege_table.py

Makes a throwaway database with an admin and a user role, migrates the ledger, writes a
row of every ledger table as each role, then runs every statement of
``ledgerflow.testing.privileges.STATEMENTS`` as each role in a transaction it rolls back,
and prints one line per statement and role: allowed or refused, and what the server said.
The database and its roles are dropped at the end. Exit 1 when an outcome differs from
what ledgerflow promises (``USER_MAY``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from ledgerflow.testing.databases import migrate_ledger
from ledgerflow.testing.pgsession import PgSession
from ledgerflow.testing.postgres import find_server
from ledgerflow.testing.privileges import (
    ROLES,
    STATEMENTS,
    TABLES,
    Outcome,
    expected,
    measure,
    seed,
)

#: The columns of ``--by-table``: statement name = f"{action} {table}".
ACTIONS = ("INSERT", "UPDATE own", "UPDATE other's", "DELETE own", "DELETE other's", "TRUNCATE")


def by_table(outcomes: dict[str, list[Outcome]]) -> None:
    """One line per ledger table, a cell per action: user/admin, + allowed, - refused."""
    found = {(o.statement, o.role): o.allowed for role in ROLES for o in outcomes[role]}

    def cell(name: str) -> str:
        return "/".join("+" if found[(name, role)] else "-" for role in ROLES)

    print((f"{'table':<17}" + "".join(f"{action:<15}" for action in ACTIONS)).rstrip())
    for table in TABLES:
        print((f"{table:<17}" + "".join(f"{cell(f'{action} {table}'):<15}" for action in ACTIONS)).rstrip())
    listed = {f"{action} {table}" for action in ACTIONS for table in TABLES}
    for name in STATEMENTS:
        if name not in listed:
            print(f"{name:<47}{cell(name)}")
    print("(user/admin; + allowed, - refused)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--by-table", action="store_true", help="one line per ledger table")
    options = parser.parse_args()
    reasons: list[str] = []
    server = find_server(reasons)
    if server is None:
        print("no PostgreSQL server: " + "; ".join(reasons), file=sys.stderr)
        return 2
    session = PgSession(server)
    try:
        database = session.create_database("lf_privilege_table")
        with tempfile.TemporaryDirectory() as root:
            migrate_ledger(database.config_entry(), root)
        seed(database)
        with database.connect("admin") as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        print(f"PostgreSQL {version}: user role = the role pipelines run with; admin = owner\n")
        outcomes = {role: measure(database, role) for role in ROLES}
        wrong = sum(o.allowed != expected(o.role, o.statement) for role in ROLES for o in outcomes[role])
        if options.by_table:
            by_table(outcomes)
            print(f"{len(outcomes['user'])} statements x {len(ROLES)} roles; {wrong} unexpected")
            return 1 if wrong else 0
        print(f"{'statement':<38} {'user':<8} {'admin':<8} the server to the user role")
        for mine, theirs in zip(outcomes["user"], outcomes["admin"], strict=True):
            cells = []
            for outcome in (mine, theirs):
                verdict = "allowed" if outcome.allowed else "refused"
                if outcome.allowed != expected(outcome.role, outcome.statement):
                    verdict += "!"
                cells.append(f"{verdict:<8}")
            print(f"{mine.statement:<38} {cells[0]} {cells[1]} {mine.how}")
        print(f"\n{len(outcomes['user'])} statements x {len(ROLES)} roles; {wrong} unexpected (marked !)")
        return 1 if wrong else 0
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(main())
