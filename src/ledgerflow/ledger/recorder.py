"""The batched recorder: ledger rows buffered in memory and written in one transaction.

Content-addressed rows (task definitions, values, arguments, calls, files, edges) are
deduplicated in memory and inserted with ``ON CONFLICT DO NOTHING``, so concurrent runs
on the same database never clash; cache entries are upserted (by a role that may rewrite
them; the user role on PostgreSQL only adds, see :mod:`ledgerflow.ledger.privileges`). A task run is inserted once,
with the latest status it reached before the flush; only rows written in an earlier flush
are updated. Writes go through the raw driver (``executemany``), in foreign-key order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from ledgerflow.config.settings import os_user
from ledgerflow.errors import DatabaseError
from ledgerflow.ledger import _sql, tables

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledgerflow.ledger.claims import Claims

#: Seconds between two flushes while a run works.
FLUSH_INTERVAL = 0.3
#: Buffered rows that trigger a flush before the interval is over.
FLUSH_ROWS = 20_000
#: SQLite busy timeout (ms) of an intermediate flush; a locked database just delays it.
SOFT_BUSY_MS = 2_000
HARD_BUSY_MS = 60_000
#: A task run still ``pending`` is written once it is this old (or has moved on): calls that
#: run at once are then inserted once, already finished.
PENDING_GRACE = 2.0
#: Page cache of the recorder's SQLite connection: big indexes stay in memory.
SQLITE_CACHE_KIB = 65_536

_STATEMENTS: dict[tuple[str, bool], _sql.LedgerStatements] = {}


class Recorder:
    """Buffers a run's ledger rows and writes them in batches (one instance per run)."""

    def __init__(
        self,
        engine: Engine,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        flush_rows: int = FLUSH_ROWS,
        writer: str | None = None,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        #: recorded as the writer of values and cache entries (PostgreSQL's trigger sets
        #: the role's name whatever is sent; SQLite keeps what the client writes)
        self.writer = (writer or os_user()) if self.dialect == "sqlite" else writer
        self.sql = _statements(engine, rewrite=True)
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self._raw: Any = None
        self._last_flush = time.monotonic()
        self.flushes = 0
        self.rows_written = 0
        # content-addressed: key -> row
        self._task_defs: dict[str, tuple[Any, ...]] = {}
        self._values: dict[str, tuple[Any, ...]] = {}
        self._repairs: dict[str, tuple[Any, ...]] = {}
        self._files: dict[str, tuple[Any, ...]] = {}
        self._arguments: dict[str, list[tuple[Any, ...]]] = {}
        self._calls: dict[str, tuple[Any, ...]] = {}
        self._value_edges: list[tuple[Any, ...]] = []
        self._call_edges: list[tuple[Any, ...]] = []
        self._cache_entries: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._tags: list[tuple[Any, ...]] = []
        self._written_rows: list[tuple[Any, ...]] = []
        # keys already written by this recorder
        self._known_values: set[str] = set()
        self._known_args: set[str] = set()
        self._known_calls: set[str] = set()
        self._known_defs: set[str] = set()
        self._known_files: set[str] = set()
        # task runs: id -> mutable row dict
        self._new_runs: dict[str, dict[str, Any]] = {}
        self._born: dict[str, float] = {}
        self._dirty_runs: dict[str, dict[str, Any]] = {}
        self._logs: list[tuple[Any, ...]] = []
        self._run_end: tuple[Any, ...] | None = None
        self._pending = 0
        #: the run's claims: a claimed call's cache entry is written only while it is its own
        self.claims: Claims | None = None
        self._released: dict[tuple[str, str], int] = {}  # claims to release -> their fence

    # -- buffering ---------------------------------------------------------------------

    def task_def(self, row: tuple[Any, ...]) -> None:
        key = row[0]
        if key not in self._known_defs and key not in self._task_defs:
            self._task_defs[key] = row
            self._pending += 1

    def has_value(self, value_hash: str) -> bool:
        return value_hash in self._known_values or value_hash in self._values

    def value_known(self, value_hash: str) -> None:
        """``value_hash`` is already in the ledger (a cached result): never write it again."""
        self._known_values.add(value_hash)

    def value(self, row: tuple[Any, ...]) -> None:
        key = row[0]
        if key not in self._known_values and key not in self._values:
            self._values[key] = (*row, self.writer)
            self._pending += 1

    def value_repair(self, row: tuple[Any, ...]) -> None:
        """Rewrite a stored value whose bytes were found corrupt, when this role may (else
        the row stays for the admin: the run used the value it computed, and ``cache
        verify`` keeps reporting the row)."""
        self._repairs[row[0]] = (*row, self.writer)
        self._pending += 1

    def value_edges(self, rows: list[tuple[Any, ...]]) -> None:
        self._value_edges.extend(rows)
        self._pending += len(rows)

    def file(self, row: tuple[Any, ...]) -> None:
        key = row[0]
        if key not in self._known_files and key not in self._files:
            self._files[key] = row
            self._pending += 1

    def has_arguments(self, args_hash: str) -> bool:
        return args_hash in self._known_args or args_hash in self._arguments

    def arguments(self, args_hash: str, rows: list[tuple[Any, ...]]) -> None:
        if not self.has_arguments(args_hash):
            self._arguments[args_hash] = rows
            self._pending += len(rows)

    def call(self, row: tuple[Any, ...], edges: Sequence[str] = ()) -> None:
        key = row[0]
        if key in self._known_calls or key in self._calls:
            return
        self._calls[key] = row
        if edges:
            self._call_edges.extend((key, i, child) for i, child in enumerate(edges))
        self._pending += 1 + len(edges)

    def cache_entry(self, row: tuple[Any, ...]) -> None:
        self._cache_entries[(row[0], row[1])] = (*row, self.writer)
        self._pending += 1

    def written(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows a call wrote through its session: (call hash, bind, table, row key)."""
        before = len(self._written_rows)
        self._written_rows.extend(rows)
        self._pending += len(self._written_rows) - before

    def release_claim(self, key: tuple[str, str], fence: int) -> None:
        """The claimed call ``key`` ended: release its claim in the flush that writes its
        cache entry, which is written only if the claim (run id and fence) is still ours."""
        self._released[key] = fence
        if key not in self._cache_entries:  # else it rides along with the entry's row
            self._pending += 1

    def tags(self, rows: Iterable[tuple[Any, ...]]) -> None:
        rows = list(rows)
        self._tags.extend(rows)
        self._pending += len(rows)

    def task_run(self, row: dict[str, Any]) -> None:
        """A new task run; ``row`` stays owned by the caller, who may keep changing it."""
        self._new_runs[row["id"]] = row
        if row["status"] == "pending":
            self._born[row["id"]] = time.monotonic()
        self._pending += 1

    def task_run_changed(self, row: dict[str, Any]) -> None:
        """``row`` changed after :meth:`task_run`; it is written at the next flush."""
        key = row["id"]
        if key not in self._new_runs and key not in self._dirty_runs:
            self._dirty_runs[key] = row
            self._pending += 1

    def logs(self, rows: Iterable[tuple[Any, ...]]) -> None:
        before = len(self._logs)
        self._logs.extend(rows)
        self._pending += len(self._logs) - before

    def end_run(self, run_id: str, status: str, root_call: str | None, result: str | None) -> None:
        now = datetime.now(UTC)
        self._run_end = (status, now, now, root_call, result, run_id)

    # -- writing -----------------------------------------------------------------------

    def due(self) -> bool:
        return self._pending >= self.flush_rows or (
            self._pending > 0 and time.monotonic() - self._last_flush >= self.flush_interval
        )

    def maybe_flush(self) -> None:
        if self.due():
            self.flush(final=False)

    def _connection(self) -> Any:
        if self._raw is None:
            try:
                self._raw = self.engine.raw_connection()
            except DBAPIError as exc:
                raise DatabaseError(f"cannot open the ledger: {exc.orig}") from None
            if self.dialect == "postgresql":
                self.sql = _statements(self.engine, rewrite=_may_rewrite(self._raw))
        return self._raw

    def _deferred(self, final: bool) -> dict[str, dict[str, Any]]:
        """New task runs kept back: still pending and younger than PENDING_GRACE."""
        if final or not self._born:
            return {}
        old = time.monotonic() - PENDING_GRACE
        born = self._born
        return {
            key: row
            for key, row in self._new_runs.items()
            if row["status"] == "pending" and born.get(key, 0.0) > old
        }

    def _batches(self, deferred: dict[str, Any]) -> list[tuple[_sql.Statement, Any]]:
        sql = self.sql
        runs = [
            tuple(r[c] for c in _sql.TASK_RUN)
            for key, r in self._new_runs.items()
            if key not in deferred
        ]
        updates = [
            (*(r[c] for c in _sql.TASK_RUN_MUTABLE), r["id"]) for r in self._dirty_runs.values()
        ]
        arguments = [row for rows in self._arguments.values() for row in rows]
        batches = [
            (sql.task_def, self._task_defs.values()),
            (sql.value, self._values.values()),
            (sql.value_repair, self._repairs.values()),
            (sql.value_edge, self._value_edges),
            (sql.file, self._files.values()),
            (sql.argument, arguments),
            (sql.call, self._calls.values()),
            (sql.call_edge, self._call_edges),
            (sql.cache_entry, self._cache_entries.values()),
            (sql.written, self._written_rows),
            (sql.task_run, runs),
            (sql.task_run_update, updates),
            (sql.log_record, self._logs),
            (sql.tag, self._tags),
        ]
        if self._run_end is not None:
            batches.append((sql.run_end, [self._run_end]))
        return batches

    def flush(self, *, final: bool = True) -> bool:
        """Write everything buffered in one transaction. Returns False when an intermediate
        flush found the database locked (the rows stay buffered for the next one)."""
        self._last_flush = time.monotonic()
        if self._pending == 0 and self._run_end is None:
            return True
        raw = self._connection()
        sqlite = self.dialect == "sqlite"
        deferred = self._deferred(final)
        work = [(st, params) for st, rows in self._batches(deferred) if (params := st.rows(rows))]
        released = self._released
        if not work and not released:
            return True
        cursor = raw.cursor()
        try:
            if sqlite:
                cursor.execute(f"PRAGMA busy_timeout = {HARD_BUSY_MS if final else SOFT_BUSY_MS}")
                cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
                cursor.execute("BEGIN IMMEDIATE")
            if released and self.claims is not None:
                work = self._fenced(cursor, work, released)
            written = 0
            for statement, params in work:
                statement.execute(cursor, params)
                written += len(params)
            if sqlite:
                cursor.execute("COMMIT")
            else:
                raw.commit()
        except BaseException as exc:
            _rollback(raw, sqlite)
            if not final and _is_locked(exc):
                return False
            if isinstance(exc, Exception) and not isinstance(exc, DatabaseError):
                raise DatabaseError(f"writing the run ledger failed: {_first_line(exc)}") from exc
            raise
        finally:
            cursor.close()
        self._written(deferred)
        if released and self.claims is not None:
            self.claims.forget(released)
        self._released = {}
        self.flushes += 1
        self.rows_written += written
        return True

    def _fenced(
        self, cursor: Any, work: list[tuple[_sql.Statement, Any]], released: dict[Any, int]
    ) -> list[tuple[_sql.Statement, Any]]:
        """Release the claims (in this transaction) and keep only the cache entries of the
        claims that were still this run's: a run that lost one records its task run, not
        the cache entry."""
        assert self.claims is not None
        owned = self.claims.release(cursor, released)
        lost = released.keys() - owned
        if not lost:
            return work
        entry = self.sql.cache_entry
        return [
            (st, [p for p in params if (p[0], p[1]) not in lost] if st is entry else params)
            for st, params in work
        ]

    def _written(self, deferred: dict[str, dict[str, Any]]) -> None:
        self._known_defs.update(self._task_defs)
        self._known_values.update(self._values)
        self._known_files.update(self._files)
        self._known_args.update(self._arguments)
        self._known_calls.update(self._calls)
        for buffer in (
            self._task_defs, self._values, self._repairs, self._files, self._arguments, self._calls,
            self._cache_entries, self._new_runs, self._dirty_runs,
        ):  # fmt: skip
            buffer.clear()
        self._value_edges = []
        self._call_edges = []
        self._logs = []
        self._tags = []
        self._written_rows = []
        self._run_end = None
        self._new_runs.update(deferred)
        self._born = {key: self._born[key] for key in deferred}
        self._pending = len(deferred)

    def close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            finally:
                self._raw = None

    # -- run rows (written at once, outside the batches) ---------------------------------

    def start_run(
        self, run: dict[str, Any], configuration: dict[str, Any] | None, tags: list[dict[str, Any]]
    ) -> None:
        with self.engine.begin() as conn:
            if configuration is not None:
                conn.execute(_insert_ignore(self.dialect, tables.configuration), [configuration])
            conn.execute(insert(tables.run), [run])
            if tags:
                conn.execute(_insert_ignore(self.dialect, tables.tag), tags)


def _statements(engine: Engine, *, rewrite: bool) -> _sql.LedgerStatements:
    key = (engine.dialect.name, rewrite)
    stmts = _STATEMENTS.get(key)
    if stmts is None:
        stmts = _STATEMENTS[key] = _sql.LedgerStatements(engine.dialect, rewrite=rewrite)
    return stmts


def _may_rewrite(raw: Any) -> bool:
    """Whether the connected PostgreSQL role may rewrite values and cache entries."""
    cursor = raw.cursor()
    try:
        cursor.execute(
            "SELECT has_table_privilege('lf_value', 'UPDATE')"
            " AND has_table_privilege('lf_cache_entry', 'UPDATE')"
        )
        (allowed,) = cursor.fetchone()
        raw.rollback()
        return bool(allowed)
    finally:
        cursor.close()


def _insert_ignore(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql as chosen
    else:
        from sqlalchemy.dialects import sqlite as chosen  # type: ignore[no-redef]
    return chosen.insert(table).on_conflict_do_nothing()


def _rollback(raw: Any, sqlite: bool) -> None:
    try:
        if sqlite:
            if raw.driver_connection.in_transaction:
                raw.driver_connection.execute("ROLLBACK")
        else:
            raw.rollback()
    except Exception:
        pass


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
