"""Writing records into a ledger: batched, idempotent, on each dialect's fast path.

Rows are buffered per kind and written every ``batch_rows`` records, all kinds in
dependency order, so memory follows one batch. Per kind and batch:

* SQLite: one ``INSERT ... ON CONFLICT DO NOTHING`` through the driver's ``executemany``;
  its row count tells added from already-present rows.
* PostgreSQL: one query finds which keys the ledger already holds, then the others go in
  with ``COPY``, inside a savepoint. Should another writer add one of them in between, the
  savepoint is rolled back and the batch goes through ``INSERT ... SELECT FROM
  unnest(arrays) ON CONFLICT DO NOTHING`` instead.

Two kinds need more than a conflict clause:

* log records have no natural key: a batch's records are compared, as a multiset, with
  those the target already holds for the same runs and time span (run, task run, time,
  level, logger and message), and only the missing ones are inserted;
* runs and task runs change once (a running run ends): a row the target still has as
  ``running``/``pending`` is updated from an incoming copy that has ended.

On PostgreSQL the user role may add records but not overwrite another role's runs, nor add
task runs or log records to them (row-level security): such an import stops with a
:class:`~ledgerflow.errors.PrivilegeError` (it is the admin's), and nothing is written.
``COPY`` is not allowed into a table whose row security applies to the role: ``INSERT`` is
used there instead. Records carry no writer: those the admin imports keep none (unknown, so
nobody's trust covers their pickles), those the user role imports are its own.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from typing import Any, Self

from sqlalchemy import Connection, bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, StatementError

from ledgerflow.config.settings import DatabaseConfig
from ledgerflow.db.chunks import chunks
from ledgerflow.db.roles import privilege_error, refused
from ledgerflow.db.times import naive_utc, utc
from ledgerflow.errors import ImportRecordsError
from ledgerflow.ledger.privileges import ROW_SECURITY
from ledgerflow.ledger.status import UNFINISHED
from ledgerflow.provenance._exchange_kinds import (
    LOG_IDENTITY,
    ORDER,
    Kind,
    sqlite_time,
)

BATCH_ROWS = 5_000
SQLITE_CACHE_KIB = 65_536
#: Statuses of run and task-run rows still under way: an import may update those.
OPEN = tuple(sorted(UNFINISHED))
_OPEN = text("status IN (" + ", ".join(f"'{state}'" for state in OPEN) + ")")

_PG_ARRAY_TYPES = {
    "str": "text[]",
    "int": "int8[]",
    "float": "float8[]",
    "bool": "bool[]",
    "datetime": "timestamptz[]",
    "bytes": "bytea[]",
}

Row = Sequence[Any]  # values in Kind.columns order


Batch = tuple[dict[str, list[Row]], dict[str, list[int]]]  # rows and line spans per kind


class RecordWriter:
    """Adds records to the ledger on one connection (inside its transaction).

    Use it as a context manager: leaving the block writes what is buffered (or, on an
    exception, stops). Batches are written by a background thread while the caller reads and
    checks the next ones (at most two batches wait): both drivers release the GIL while the
    database works, so parsing and writing overlap. The connection is only touched by that
    thread until the block ends.
    """

    def __init__(
        self, conn: Connection, *, source: str, batch_rows: int = BATCH_ROWS,
        background: bool = True, db: DatabaseConfig | None = None,
    ) -> None:
        self.conn = conn
        self.source = source
        self.db = db  # the target, named when a role is refused
        self._secured: dict[str, bool] = {}
        self.batch_rows = batch_rows
        self.added: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.updated: Counter[str] = Counter()
        self._buffers: dict[str, list[Row]] = {kind.name: [] for kind in ORDER}
        self._lines: dict[str, list[int]] = {}
        self._pending = 0
        self._statements: dict[str, tuple[str, Callable[[list[Row]], Any]]] = {}
        self._postgres = conn.dialect.name == "postgresql"
        driver = conn.dialect.dbapi
        self._errors: tuple[type[BaseException], ...] = (DBAPIError, StatementError) + (
            (driver.Error,) if driver is not None else ()
        )
        if conn.dialect.name == "sqlite":  # big indexes stay in memory while they grow
            conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        else:  # the admin's import leaves foreign records' writer unknown, not the admin's;
            # every import keeps the records' own times, so importing a file again adds nothing
            conn.exec_driver_sql(
                "SELECT set_config('ledgerflow.keep_writer', 'on', true), "
                "set_config('ledgerflow.keep_time', 'on', true)"
            )
        self._failed: Exception | None = None
        self._queue: queue.Queue[Batch | None] | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._work, name="ledgerflow-import", daemon=True)
            self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.flush()
        self._stop()
        if kind is None and self._failed is not None:
            raise self._failed

    def add(self, kind: Kind, row: Row, line: int | None = None) -> None:
        self._buffers[kind.name].append(row)
        if line is not None:
            span = self._lines.setdefault(kind.name, [line, line])
            span[1] = line
        self._pending += 1
        if self._pending >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write (or hand to the writing thread) what is buffered."""
        if self._failed is not None:
            raise self._failed
        if not self._pending:
            return
        batch: Batch = (self._buffers, self._lines)
        self._buffers = {kind.name: [] for kind in ORDER}
        self._lines = {}
        self._pending = 0
        if self._queue is None:
            self._write_batch(batch)
        else:
            self._queue.put(batch)

    def _stop(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None

    def _work(self) -> None:
        assert self._queue is not None
        while (batch := self._queue.get()) is not None:
            if self._failed is None:
                try:
                    self._write_batch(batch)
                except Exception as exc:  # any failure is handed to the caller's thread
                    self._failed = exc

    def _write_batch(self, batch: Batch) -> None:
        buffers, lines = batch
        for kind in ORDER:
            rows = buffers[kind.name]
            if rows:
                try:
                    self._write(kind, rows)
                except self._errors as exc:
                    if refused(exc) and self.db is not None:
                        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
                        raise privilege_error(
                            "an import that adds to or overwrites another role's runs",
                            self.db, reason[0] if reason else "",
                        ) from None
                    raise self._failure(kind, exc, lines.get(kind.name)) from None

    def _failure(self, kind: Kind, exc: BaseException, span: list[int] | None) -> ImportRecordsError:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        where = f"{self.source}, lines {span[0]}-{span[1]}" if span else self.source
        return ImportRecordsError(
            f"{where}: the {kind.name} records could not be written: "
            f"{reason[0] if reason else type(exc).__name__}",
            hint="a record refers to one missing from the file and the ledger, or the "
            "ledger's schema differs; nothing was imported",
        )

    def _write(self, kind: Kind, rows: list[Row]) -> None:
        if kind.keyless:
            fresh = self._missing_logs(kind, rows)
            self.skipped[kind.name] += len(rows) - len(fresh)
            rows = fresh
            if not rows:
                return
        elif kind.sort_key is not None:
            rows.sort(key=kind.sort_key)  # key order: index pages are visited once per batch
        if self._postgres:
            added = self._copy_new(kind, rows)
        else:
            sql, params = self._statement(kind)
            added = self._execute(sql, params(rows))
        self.added[kind.name] += added
        self.skipped[kind.name] += len(rows) - added
        if kind.mutable and added < len(rows):
            ended = self._end_open_rows(kind, rows)
            self.updated[kind.name] += ended
            self.skipped[kind.name] -= ended

    def _execute(self, sql: str, params: Any) -> int:
        if self._postgres:
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute(sql, params)
                return int(cursor.rowcount)
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, params)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _copy_new(self, kind: Kind, rows: list[Row]) -> int:
        """PostgreSQL: COPY the rows whose key the ledger lacks, inside a savepoint. Should a
        concurrent writer add one of them meanwhile, the batch goes through the
        ``INSERT ... SELECT FROM unnest ... ON CONFLICT DO NOTHING`` statement instead."""
        from psycopg.errors import UniqueViolation

        rows = _aware(kind, rows)
        raw = self.conn.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            fresh = rows if kind.keyless else self._absent(cursor, kind, rows)
            if not fresh:
                return 0
            if self._row_security(cursor, kind):
                sql, params = self._statement(kind)
                cursor.execute(sql, params(fresh))
                return int(cursor.rowcount)
            table, columns = self._names(kind)
            cursor.execute("SAVEPOINT lf_import")
            try:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in fresh:
                        copy.write_row(row)
            except UniqueViolation:
                cursor.execute("ROLLBACK TO SAVEPOINT lf_import")
                sql, params = self._statement(kind)
                cursor.execute(sql, params(rows))
                return int(cursor.rowcount)
            cursor.execute("RELEASE SAVEPOINT lf_import")
        return len(fresh)

    def _row_security(self, cursor: Any, kind: Kind) -> bool:
        """Whether row-level security applies to this role on the kind's table."""
        name = kind.table.name
        if name not in ROW_SECURITY:
            return False
        found = self._secured.get(name)
        if found is None:
            found = self._secured[name] = bool(
                cursor.execute("SELECT row_security_active(%s)", [name]).fetchone()[0]
            )
        return found

    def _absent(self, cursor: Any, kind: Kind, rows: list[Row]) -> list[Row]:
        """The rows whose key is neither in the ledger nor earlier in the batch."""
        quote = self.conn.dialect.identifier_preparer.quote
        names = [quote(c) for c in kind.key_columns]
        at = [kind.index[c] for c in kind.key_columns]
        arrays = ", ".join(f"%b::{_PG_ARRAY_TYPES[kind.fields[i].type]}" for i in at)
        on = " AND ".join(f"t.{n} = u.{n}" for n in names)
        sql = (f"SELECT {', '.join('t.' + n for n in names)} FROM {self._names(kind)[0]} t "
               f"JOIN unnest({arrays}) AS u({', '.join(names)}) ON {on}")
        found = cursor.execute(sql, [[row[i] for row in rows] for i in at]).fetchall()
        seen = {f[0] for f in found} if len(at) == 1 else {tuple(f) for f in found}
        key = kind.sort_key
        assert key is not None  # every kind but log records has a key
        fresh = []
        for row in rows:
            k = key(row)
            if k not in seen:
                seen.add(k)
                fresh.append(row)
        return fresh

    def _statement(self, kind: Kind) -> tuple[str, Callable[[list[Row]], Any]]:
        cached = self._statements.get(kind.name)
        if cached is None:
            cached = self._pg_statement(kind) if self._postgres else self._sqlite_statement(kind)
            self._statements[kind.name] = cached
        return cached

    def _names(self, kind: Kind) -> tuple[str, str]:
        preparer = self.conn.dialect.identifier_preparer
        table = preparer.format_table(kind.table)
        columns = ", ".join(preparer.quote(kind.table.c[name].name) for name in kind.columns)
        return table, columns

    def _sqlite_statement(self, kind: Kind) -> tuple[str, Callable[[list[Row]], Any]]:
        table, columns = self._names(kind)
        marks = ", ".join("?" * len(kind.columns))
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        times = kind.times

        def params(rows: list[Row]) -> Iterable[Sequence[Any]]:
            for row in rows:
                values = list(row)
                for i in times:
                    if values[i] is not None:
                        values[i] = sqlite_time(values[i])
                yield values

        return sql, params

    def _pg_statement(self, kind: Kind) -> tuple[str, Callable[[list[Row]], Any]]:
        table, columns = self._names(kind)
        arrays = ", ".join(f"%b::{_PG_ARRAY_TYPES[f.type]}" for f in kind.fields)
        sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
        times, binaries = set(kind.times), set(kind.binaries)

        def params(rows: list[Row]) -> list[list[Any]]:
            out = [list(column) for column in zip(*rows, strict=True)]
            for i in times:
                out[i] = [v if v is None or v.tzinfo is UTC else utc(v) for v in out[i]]
            for i in binaries:
                out[i] = [v if v is None or type(v) is bytes else bytes(v) for v in out[i]]
            return out

        return sql, params

    def _missing_logs(self, kind: Kind, rows: list[Row]) -> list[Row]:
        """The log records of a batch that the ledger does not hold yet."""
        table = kind.table
        where = [kind.index[name] for name in LOG_IDENTITY]
        run_at, time_at = kind.index["run_id"], kind.index["created_at"]
        times = [utc(row[time_at]) for row in rows]
        low, high = min(times), max(times)
        existing: Counter[tuple[Any, ...]] = Counter()
        columns = [table.c[name] for name in LOG_IDENTITY]
        for batch in chunks({row[run_at] for row in rows}):
            query = select(*columns).where(
                table.c.run_id.in_(batch), table.c.created_at >= low, table.c.created_at <= high
            )
            existing.update(_log_identity(tuple(found)) for found in self.conn.execute(query))
        if not existing:
            return rows
        fresh = []
        for row in rows:
            identity = _log_identity(tuple(row[i] for i in where))
            if existing[identity] > 0:
                existing[identity] -= 1
            else:
                fresh.append(row)
        return fresh

    def _end_open_rows(self, kind: Kind, rows: list[Row]) -> int:
        """Update rows still open in the ledger from incoming copies that have ended."""
        table = kind.table
        id_at, status_at = kind.index["id"], kind.index["status"]
        ended = {row[id_at]: row for row in rows if row[status_at] not in OPEN}
        stale: list[str] = []
        for batch in chunks(ended):
            query = select(table.c.id).where(table.c.id.in_(batch), table.c.status.in_(OPEN))
            stale.extend(self.conn.scalars(query))
        if not stale:
            return 0
        others = [(i, name) for i, name in enumerate(kind.columns) if name != "id"]
        stmt = (
            update(table)
            .where(table.c.id == bindparam("key_id"), _OPEN)
            .values({name: bindparam(f"new_{name}") for _, name in others})
        )
        params = [
            {"key_id": id_, **{f"new_{name}": ended[id_][i] for i, name in others}} for id_ in stale
        ]
        updated = 0
        for one in params:  # one by one: each count says whether row security let it through
            updated += int(self.conn.execute(stmt, one).rowcount)
        if updated < len(stale) and self.db is not None and self._postgres and self._row_security(
            self.conn.connection.driver_connection, kind
        ):
            raise privilege_error(
                "an import that overwrites another role's runs", self.db,
                f"{len(stale) - updated} open {kind.name.replace('_', ' ')} rows were started "
                "by another role",
            )
        return updated


def _aware(kind: Kind, rows: list[Row]) -> list[Row]:
    """Rows whose times are aware UTC datetimes (rows read from SQLite carry naive ones)."""
    first = rows[0]
    if all(first[i] is None or first[i].tzinfo is UTC for i in kind.times):
        return rows
    fixed: list[Row] = []
    for row in rows:
        values = list(row)
        for i in kind.times:
            if values[i] is not None:
                values[i] = utc(values[i])
        fixed.append(values)
    return fixed


def _log_identity(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Run, task run, naive UTC time, level, logger, message: what tells two log records apart."""
    run_id, task_run_id, created_at, *rest = values
    return (run_id, task_run_id, naive_utc(created_at), *rest)
