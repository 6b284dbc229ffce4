"""Raw-driver statements for the recorder: prepared once per table, fed with tuples.

Values pass through each column type's bind processor, so rows read back through the ORM
look exactly as if the ORM had written them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Float, Table
from sqlalchemy.engine import Dialect

from ledgerflow.ledger import tables
from ledgerflow.ledger.privileges import ROW_SECURITY

Processor = Callable[[Any], Any]
_UTC = UTC


_SECONDS: dict[int, str] = {}


def _sqlite_datetime(value: Any) -> str:
    """What SQLAlchemy's SQLite DATETIME stores (UTC fields, always 6 fractional digits);
    epoch seconds are accepted too."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_UTC)
        return value.isoformat(" ", "microseconds")[:26]
    whole = int(value)
    micros = round((value - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    prefix = _SECONDS.get(whole)
    if prefix is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        prefix = _SECONDS[whole] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
    return f"{prefix}.{micros:06d}"


def _aware_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromtimestamp(value, _UTC)


#: Rows per multi-row ``INSERT ... VALUES`` statement on PostgreSQL.
ROWS_PER_STATEMENT = 500


def _raw_cursor() -> Any:
    """psycopg's RawCursor (psycopg >= 3.2), or None: then rows go one by one."""
    import psycopg  # only PostgreSQL statements get here

    return getattr(psycopg, "RawCursor", None)


class Statement:
    """One SQL statement on one table with the processors of its parameters.

    SQLite runs it with ``executemany``. On PostgreSQL a plain insert is a ``COPY`` and an
    insert with ``ON CONFLICT`` sends hundreds of rows per statement.
    """

    def __init__(
        self,
        sql: str,
        processors: list[tuple[int, Processor]],
        *,
        copy: str | None = None,
        multi: tuple[str, int, str] | None = None,
    ) -> None:
        self.sql = sql
        self.processors = processors
        self.copy = copy
        self.multi = multi  # (head, columns per row, tail)
        self._multi_sql: dict[int, str] = {}

    def execute(self, cursor: Any, params: list[Sequence[Any]]) -> None:
        if self.copy is not None:
            with cursor.copy(self.copy) as copy:
                for row in params:
                    copy.write_row(row)
        elif self.multi is not None and _raw_cursor() is not None:
            with _raw_cursor()(cursor.connection) as raw:  # $n placeholders: no parsing
                for start in range(0, len(params), ROWS_PER_STATEMENT):
                    chunk = params[start : start + ROWS_PER_STATEMENT]
                    raw.execute(self._sql_for(len(chunk)), [v for row in chunk for v in row])
        else:
            cursor.executemany(self.sql, params)

    def _sql_for(self, count: int) -> str:
        sql = self._multi_sql.get(count)
        if sql is None:
            assert self.multi is not None
            head, width, tail = self.multi
            rows = (
                "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
                for r in range(count)
            )
            sql = self._multi_sql[count] = f"{head} {', '.join(rows)}{tail}"
        return sql

    def rows(self, rows: Iterable[Sequence[Any]]) -> list[Any]:
        if not self.processors:
            return list(rows)
        out = []
        procs = self.processors
        for row in rows:
            values = list(row)
            for i, proc in procs:
                value = values[i]
                if value is not None:
                    values[i] = proc(value)
            out.append(values)
        return out


class Statements:
    """Builds the statements the recorder uses, for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._quote = dialect.identifier_preparer.quote

    def _processors(self, table: Table, columns: Sequence[str]) -> list[tuple[int, Processor]]:
        """Per-parameter conversions; date-time columns also accept epoch seconds."""
        found: list[tuple[int, Processor]] = []
        sqlite = self.dialect.name == "sqlite"
        for i, name in enumerate(columns):
            kind = table.c[name].type
            if isinstance(kind, DateTime):
                found.append((i, _sqlite_datetime if sqlite else _aware_datetime))
            elif isinstance(kind, Float):
                continue  # the recorder passes floats already
            else:
                proc = kind._cached_bind_processor(self.dialect)
                if proc is not None:
                    found.append((i, proc))
        return found

    def _names(self, columns: Sequence[str]) -> str:
        return ", ".join(self._quote(c) for c in columns)

    def insert(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        conflict: Sequence[str] | None = None,
        update: Sequence[str] = (),
    ) -> Statement:
        """``INSERT``; with ``conflict`` (the key), ``ON CONFLICT DO NOTHING`` or ``DO UPDATE``.

        On PostgreSQL a plain insert is a ``COPY``, except into a table under row-level
        security (PostgreSQL refuses ``COPY FROM`` there to a role its policies apply to)."""
        marks = ", ".join([self.mark] * len(columns))
        head = f"INSERT INTO {self._quote(table.name)} ({self._names(columns)}) VALUES"
        tail = ""
        if conflict is not None:
            target = f"({self._names(conflict)})" if conflict else ""
            if update:
                sets = ", ".join(f"{self._quote(c)} = excluded.{self._quote(c)}" for c in update)
                tail = f" ON CONFLICT {target} DO UPDATE SET {sets}"
            else:
                tail = f" ON CONFLICT {target} DO NOTHING"
        processors = self._processors(table, columns)
        sql = f"{head} ({marks}){tail}"
        if self.dialect.name != "postgresql":
            return Statement(sql, processors)
        if conflict is None and table.name not in ROW_SECURITY:
            copy = f"COPY {self._quote(table.name)} ({self._names(columns)}) FROM STDIN"
            return Statement(sql, processors, copy=copy)
        return Statement(sql, processors, multi=(head, len(columns), tail))

    def update(self, table: Table, columns: Sequence[str], key: str) -> Statement:
        """``UPDATE table SET columns... WHERE key = ?`` (the key is the last parameter)."""
        sets = ", ".join(f"{self._quote(c)} = {self.mark}" for c in columns)
        sql = f"UPDATE {self._quote(table.name)} SET {sets} WHERE {self._quote(key)} = {self.mark}"
        return Statement(sql, self._processors(table, [*columns, key]))


T = tables.metadata.tables

TASK_DEF = ("hash", "name", "namespace", "version", "module", "source", "helpers", "created_at")
VALUE = (
    "hash", "type_name", "format", "preview", "size", "inline", "store_key", "signature",
    "created_at", "writer",
)  # fmt: skip
VALUE_EDGE = ("parent_hash", "position", "child_hash")
FILE = ("hash", "path", "content_hash", "size", "mtime", "created_at")
ARGUMENT = ("args_hash", "position", "key", "value_hash")
CALL = ("hash", "task_hash", "args_hash", "value_hash", "created_at")
CALL_EDGE = ("parent_hash", "position", "child_hash")
CACHE_ENTRY = (
    "task_hash", "args_hash", "call_hash", "value_hash", "run_id", "created_at", "writer",
)  # fmt: skip
TASK_RUN = (
    "id", "run_id", "parent_id", "task_hash", "task_name", "args_hash", "call_hash",
    "value_hash", "status", "attempt", "cached_from", "started_at", "ended_at", "duration",
    "worker", "exception_type", "exception_message", "traceback",
)  # fmt: skip
TASK_RUN_MUTABLE = TASK_RUN[5:]
LOG_RECORD = ("run_id", "task_run_id", "created_at", "level", "logger", "message")
TAG = ("entity_id", "key", "value", "entity_kind", "created_at")
WRITTEN = ("call_hash", "bind", "table_name", "row_key")
RUN_END = ("status", "ended_at", "heartbeat_at", "root_call_hash", "result_hash")


class LedgerStatements:
    """Every statement the recorder runs, prepared for one dialect.

    ``rewrite=False`` is for a role that may only add values and cache entries (the user
    role on PostgreSQL): a repaired value or a new cache entry for a key that has one is
    then left out, and what the ledger holds stays (the admin may rewrite it).
    """

    def __init__(self, dialect: Dialect, *, rewrite: bool = True) -> None:
        s = Statements(dialect)
        self.task_def = s.insert(T["lf_task_def"], TASK_DEF, conflict=())
        self.value = s.insert(T["lf_value"], VALUE, conflict=())
        self.value_repair = s.insert(
            T["lf_value"],
            VALUE,
            conflict=("hash",),
            update=("format", "size", "inline", "store_key", "signature", "writer") if rewrite else (),
        )
        self.value_edge = s.insert(T["lf_value_edge"], VALUE_EDGE, conflict=())
        self.file = s.insert(T["lf_file"], FILE, conflict=())
        self.argument = s.insert(T["lf_argument"], ARGUMENT, conflict=())
        self.call = s.insert(T["lf_call"], CALL, conflict=())
        self.call_edge = s.insert(T["lf_call_edge"], CALL_EDGE, conflict=())
        # a new version of the call's entry: the newest valid one is used, none is rewritten
        self.cache_entry = s.insert(T["lf_cache_entry"], CACHE_ENTRY, conflict=())
        self.task_run = s.insert(T["lf_task_run"], TASK_RUN)
        self.task_run_update = s.update(T["lf_task_run"], TASK_RUN_MUTABLE, "id")
        self.log_record = s.insert(T["lf_log_record"], LOG_RECORD)
        self.tag = s.insert(T["lf_tag"], TAG, conflict=())
        self.run_end = s.update(T["lf_run"], RUN_END, "id")
        self.written = s.insert(T["lf_written"], WRITTEN, conflict=())
