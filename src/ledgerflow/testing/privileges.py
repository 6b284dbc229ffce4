"""What each role may do to the ledger on a live PostgreSQL server, measured statement by statement.

:func:`seed` writes, in a migrated ledger, one row of every ledger table as the user role
("own", in a run the user started) and one as the admin ("other's", in the admin's run).
:func:`measure` then runs each statement of :data:`STATEMENTS` as a role, in a transaction
it rolls back, and says whether the server let it through: an error (``permission denied``,
a row refused by row security) or a statement that reached no row counts as refused.
:data:`USER_MAY` is what the user role is expected to be allowed; the admin may do all.

The test suite asserts the expectations; ``scripts/privilege_table.py`` prints the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ledgerflow.testing.postgres import PgDatabase

Role = Literal["admin", "user"]
ROLES: tuple[Role, ...] = ("user", "admin")

VALUE = "v" * 40
TASK = "t" * 40
CALL = "c" * 40
RUNS = {"own": "run_own", "other": "run_other", "new": "run_own"}
POSITIONS = {"own": 1, "other": 2, "new": 3}


@dataclass(frozen=True)
class TableRows:
    """How to add, find and change one row of a ledger table (``{key}``, ``{run}``, ``{n}``)."""

    insert: str
    where: str
    column: str


TABLES: dict[str, TableRows] = {
    "lf_configuration": TableRows(
        "INSERT INTO lf_configuration (hash, yaml, created_at) VALUES ('{key}', 'y', now())",
        "hash = '{key}'", "yaml"),
    "lf_run": TableRows(
        "INSERT INTO lf_run (id, status, entry_task, started_at, heartbeat_at) "
        "VALUES ('{key}', 'running', 'x', now(), now())",
        "id = '{run}'", "status"),
    "lf_task_def": TableRows(
        "INSERT INTO lf_task_def (hash, name, namespace, created_at) VALUES ('{key}', 'n', '', now())",
        "hash = '{key}'", "name"),
    "lf_value": TableRows(
        "INSERT INTO lf_value (hash, type_name, format, created_at) VALUES ('{key}', 'int', 'json', now())",
        "hash = '{key}'", "format"),
    "lf_value_edge": TableRows(
        f"INSERT INTO lf_value_edge (parent_hash, position, child_hash) VALUES ('{VALUE}', '{{key}}', '{VALUE}')",
        "position = '{key}'", "child_hash"),
    "lf_argument": TableRows(
        f"INSERT INTO lf_argument (args_hash, position, value_hash) VALUES ('{{key}}', 0, '{VALUE}')",
        "args_hash = '{key}'", "value_hash"),
    "lf_call": TableRows(
        f"INSERT INTO lf_call (hash, task_hash, args_hash, value_hash, created_at) "
        f"VALUES ('{{key}}', '{TASK}', 'a', '{VALUE}', now())",
        "hash = '{key}'", "value_hash"),
    "lf_call_edge": TableRows(
        f"INSERT INTO lf_call_edge (parent_hash, position, child_hash) VALUES ('{CALL}', {{n}}, '{CALL}')",
        f"parent_hash = '{CALL}' AND position = {{n}}", "child_hash"),
    "lf_task_run": TableRows(
        f"INSERT INTO lf_task_run (id, run_id, task_hash, task_name, args_hash, status, attempt) "
        f"VALUES ('{{key}}', '{{run}}', '{TASK}', 'x', 'a', 'running', 1)",
        "id = '{key}'", "status"),
    "lf_log_record": TableRows(
        "INSERT INTO lf_log_record (run_id, created_at, level, message) "
        "VALUES ('{run}', now(), 'INFO', '{key}')",
        "message = '{key}'", "message"),
    "lf_file": TableRows(
        "INSERT INTO lf_file (hash, path, content_hash, created_at) VALUES ('{key}', 'p', 'c', now())",
        "hash = '{key}'", "path"),
    "lf_tag": TableRows(
        "INSERT INTO lf_tag (entity_id, key, value, entity_kind, created_at) "
        "VALUES ('{run}', 'k', '{key}', 'run', now())",
        "value = '{key}'", "value"),
    "lf_cache_entry": TableRows(
        f"INSERT INTO lf_cache_entry (task_hash, args_hash, call_hash, value_hash, created_at) "
        f"VALUES ('{TASK}', '{{key}}', '{CALL}', '{VALUE}', now())",
        "args_hash = '{key}'", "value_hash"),
    "lf_value_chunk": TableRows(
        "INSERT INTO lf_value_chunk (key, seq, data) VALUES ('{key}', 0, '\\x00'::bytea)",
        "key = '{key}'", "data"),
    "lf_claim": TableRows(
        f"INSERT INTO lf_claim (task_hash, args_hash, run_id, fence, claimed_at, expires_at) "
        f"VALUES ('{TASK}', '{{key}}', '{{run}}', 1, now(), now())",
        "args_hash = '{key}'", "fence"),
    "lf_written": TableRows(
        "INSERT INTO lf_written (call_hash, bind, table_name, row_key) VALUES ('{key}', 'default', 't', '1')",
        "call_hash = '{key}'", "row_key"),
}  # fmt: skip


def _fill(template: str, table: str, variant: str) -> str:
    key = "run_new" if table == "lf_run" and variant == "new" else f"{table[3:]}_{variant}"[:32]
    if table == "lf_run" and variant != "new":
        key = RUNS[variant]
    return template.format(key=key, run=RUNS[variant] if table != "lf_run" else key,
                           n=POSITIONS[variant])


def _statements() -> dict[str, str]:
    found: dict[str, str] = {}
    for table, rows in TABLES.items():
        found[f"INSERT {table}"] = _fill(rows.insert, table, "new")
        if table in ("lf_task_run", "lf_log_record"):
            found[f"INSERT {table} into other's run"] = _fill(
                rows.insert.replace("{run}", RUNS["other"]), table, "new"
            ).replace(f"{table[3:]}_new", f"{table[3:]}_new2")
        for variant, whose in (("own", "own"), ("other", "other's")):
            where = _fill(rows.where, table, variant)
            found[f"UPDATE {whose} {table}"] = (
                f"UPDATE {table} SET {rows.column} = {rows.column} WHERE {where}"
            )
            found[f"DELETE {whose} {table}"] = f"DELETE FROM {table} WHERE {where}"
        found[f"TRUNCATE {table}"] = f"TRUNCATE {table} CASCADE"
    found["DROP TABLE lf_claim"] = "DROP TABLE lf_claim"
    found["ALTER TABLE lf_run"] = "ALTER TABLE lf_run ADD COLUMN intruder integer"
    found["INSERT alembic_version"] = "INSERT INTO alembic_version (version_num) VALUES ('x')"
    found["UPDATE alembic_version"] = "UPDATE alembic_version SET version_num = version_num"
    found["DELETE alembic_version"] = "DELETE FROM alembic_version"
    found["lf_reap_stale_runs()"] = "SELECT count(*) FROM lf_reap_stale_runs(3600)"
    found["DISABLE ROW LEVEL SECURITY"] = "ALTER TABLE lf_run DISABLE ROW LEVEL SECURITY"
    return found


#: Statement name -> SQL, in table order.
STATEMENTS = _statements()

#: The statements the user role may run (every other one is refused to it).
USER_MAY = frozenset(
    [f"INSERT {table}" for table in TABLES]
    + ["UPDATE own lf_run", "UPDATE own lf_task_run", "DELETE own lf_tag"]
    + ["UPDATE own lf_claim", "UPDATE other's lf_claim", "DELETE own lf_claim",
       "DELETE other's lf_claim"]
    + ["lf_reap_stale_runs()"]
)


def expected(role: Role, statement: str) -> bool:
    """Whether ``role`` should be allowed ``statement``."""
    return role == "admin" or statement in USER_MAY


@dataclass(frozen=True)
class Outcome:
    statement: str
    role: Role
    allowed: bool
    how: str  # rows reached, or why it was refused

    def line(self) -> str:
        verdict = "allowed" if self.allowed else "refused"
        return f"{self.statement:<42} {self.role:<6} {verdict:<8} {self.how}"


def seed(database: PgDatabase) -> None:
    """The rows the statements work on: base rows and "other's" by the admin, "own" by the user."""
    with database.connect("admin") as conn:
        conn.execute(TABLES["lf_value"].insert.format(key=VALUE))
        conn.execute(TABLES["lf_task_def"].insert.format(key=TASK))
        conn.execute(TABLES["lf_call"].insert.format(key=CALL))
        conn.execute(_fill(TABLES["lf_run"].insert, "lf_run", "other"))
    with database.connect("user") as conn:
        conn.execute(_fill(TABLES["lf_run"].insert, "lf_run", "own"))
        for table, rows in TABLES.items():
            if table != "lf_run":
                conn.execute(_fill(rows.insert, table, "own"))
    with database.connect("admin") as conn:
        for table, rows in TABLES.items():
            if table != "lf_run":
                conn.execute(_fill(rows.insert, table, "other"))


def measure(database: PgDatabase, role: Role, names: Iterable[str] | None = None) -> list[Outcome]:
    """Run each statement as ``role``, each in a transaction rolled back; what the server said."""
    import psycopg

    outcomes = []
    with database.connect(role, autocommit=False) as conn:
        for name in names or STATEMENTS:
            sql = STATEMENTS[name]
            try:
                cursor: Any = conn.execute(sql)
                rows = cursor.rowcount
                if sql.startswith("SELECT"):
                    allowed, how = True, "ran"
                elif sql.startswith(("TRUNCATE", "DROP", "ALTER")):
                    allowed, how = True, "done"
                else:
                    allowed, how = rows > 0, f"{rows} row{'s' if rows != 1 else ''}"
                    if not allowed:
                        how += " (row security)"
            except psycopg.errors.InsufficientPrivilege as exc:
                allowed, how = False, str(exc).strip().splitlines()[0]
            finally:
                conn.rollback()
            outcomes.append(Outcome(name, role, allowed, how))
    return outcomes
