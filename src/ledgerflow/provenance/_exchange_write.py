"""Writing records into a ledger: batched, idempotent, on each dialect's fast path.

Rows are buffered per kind and written every ``batch_rows`` records, all kinds in
dependency order, so memory follows one batch. Each batch is one statement per kind with
``ON CONFLICT DO NOTHING``: SQLite through the driver's ``executemany``, PostgreSQL as one
``INSERT ... SELECT FROM unnest(arrays)``. The driver's row count tells added from
already-present rows.

Two kinds need more than a conflict clause:

* log records have no natural key: a batch's records are compared, as a multiset, with
  those the target already holds for the same runs and time span (run, task run, time,
  level, logger and message), and only the missing ones are inserted;
* runs and task runs change once (a running run ends): a row the target still has as
  ``running``/``pending`` is updated from an incoming copy that has ended.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, StatementError

from ledgerflow.errors import ImportRecordsError
from ledgerflow.provenance._exchange_kinds import (
    LOG_IDENTITY,
    OPEN_STATES,
    ORDER,
    Kind,
    naive_utc,
    utc,
)
from ledgerflow.provenance._exchange_reach import chunks

BATCH_ROWS = 5_000
_OPEN = text("status IN (" + ", ".join(f"'{state}'" for state in OPEN_STATES) + ")")

_PG_ARRAY_TYPES = {
    "str": "text[]",
    "int": "int8[]",
    "float": "float8[]",
    "bool": "bool[]",
    "datetime": "timestamptz[]",
    "bytes": "bytea[]",
}

Row = Mapping[str, Any]


class RecordWriter:
    """Adds records to the ledger on one connection (inside its transaction)."""

    def __init__(self, conn: Connection, *, source: str, batch_rows: int = BATCH_ROWS) -> None:
        self.conn = conn
        self.source = source
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

    def add(self, kind: Kind, row: Row, line: int | None = None) -> None:
        self._buffers[kind.name].append(row)
        if line is not None:
            span = self._lines.setdefault(kind.name, [line, line])
            span[1] = line
        self._pending += 1
        if self._pending >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        for kind in ORDER:
            rows = self._buffers[kind.name]
            if rows:
                try:
                    self._write(kind, rows)
                except self._errors as exc:
                    raise self._failure(kind, exc) from None
                rows.clear()
        self._lines.clear()
        self._pending = 0

    def _failure(self, kind: Kind, exc: Exception) -> ImportRecordsError:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        span = self._lines.get(kind.name)
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
        dialect = self.conn.dialect
        converters: list[Callable[[Any], Any] | None] = []
        for field in kind.fields:
            proc = kind.table.c[field.name].type._cached_bind_processor(dialect)
            if field.type == "datetime":
                converters.append(_then(utc, proc))
            else:
                converters.append(proc)
        names = kind.columns

        def params(rows: list[Row]) -> Iterable[tuple[Any, ...]]:
            for row in rows:
                yield tuple(
                    row[name] if conv is None or row[name] is None else conv(row[name])
                    for name, conv in zip(names, converters, strict=True)
                )

        return sql, params

    def _pg_statement(self, kind: Kind) -> tuple[str, Callable[[list[Row]], Any]]:
        table, columns = self._names(kind)
        arrays = ", ".join(f"%s::{_PG_ARRAY_TYPES[f.type]}" for f in kind.fields)
        sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
        fields = [(f.name, f.type) for f in kind.fields]

        def params(rows: list[Row]) -> list[list[Any]]:
            out = []
            for name, type_ in fields:
                column = [row[name] for row in rows]
                if type_ == "datetime":
                    column = [None if v is None else utc(v) for v in column]
                elif type_ == "bytes":
                    column = [None if v is None else bytes(v) for v in column]
                out.append(column)
            return out

        return sql, params

    def _missing_logs(self, kind: Kind, rows: list[Row]) -> list[Row]:
        """The log records of a batch that the ledger does not hold yet."""
        table = kind.table
        times = [row["created_at"] for row in rows]
        low, high = min(map(utc, times)), max(map(utc, times))
        existing: Counter[tuple[Any, ...]] = Counter()
        columns = [table.c[name] for name in LOG_IDENTITY]
        for batch in chunks({row["run_id"] for row in rows}):
            query = select(*columns).where(
                table.c.run_id.in_(batch), table.c.created_at >= low, table.c.created_at <= high
            )
            existing.update(_log_identity(row._mapping) for row in self.conn.execute(query))
        if not existing:
            return rows
        fresh = []
        for row in rows:
            identity = _log_identity(row)
            if existing[identity] > 0:
                existing[identity] -= 1
            else:
                fresh.append(row)
        return fresh

    def _end_open_rows(self, kind: Kind, rows: list[Row]) -> int:
        """Update rows still open in the ledger from incoming copies that have ended."""
        table = kind.table
        ended = {row["id"]: row for row in rows if row["status"] not in OPEN_STATES}
        stale: list[str] = []
        for batch in chunks(ended):
            query = select(table.c.id).where(table.c.id.in_(batch), table.c.status.in_(OPEN_STATES))
            stale.extend(self.conn.scalars(query))
        if not stale:
            return 0
        others = [name for name in kind.columns if name != "id"]
        stmt = (
            update(table)
            .where(table.c.id == bindparam("key_id"), _OPEN)
            .values({name: bindparam(f"new_{name}") for name in others})
        )
        params = [
            {"key_id": id_, **{f"new_{name}": ended[id_][name] for name in others}} for id_ in stale
        ]
        self.conn.execute(stmt, params)
        return len(stale)


def _then(first: Callable[[Any], Any], second: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    if second is None:
        return first
    return lambda value: second(first(value))


def _log_identity(row: Row) -> tuple[Any, ...]:
    return tuple(
        naive_utc(row[name]) if name == "created_at" else row[name] for name in LOG_IDENTITY
    )
