"""The fastest insert path each driver offers, used by :func:`ledgerflow.db.bulk_insert`.

SQLite: one prepared ``INSERT`` fed to ``sqlite3``'s ``executemany``.
PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3 for large batches (binary format when
every value is of a type binary COPY writes exactly as the text form, else text), Core
executemany (insertmanyvalues) for small ones. Values pass through each column type's bind processor,
so what lands in the table is what the ORM would have written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from operator import attrgetter, itemgetter, methodcaller
from typing import Any

from sqlalchemy import Boolean, Column, Connection, Dialect, LargeBinary, Table, insert
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine.processors import to_float
from sqlalchemy.exc import DBAPIError

from ledgerflow.errors import UsageError

COPY_MIN_ROWS = 500

_Convert = Callable[[list[Mapping[str, Any]]], list[Sequence[Any]]]
_ColumnProc = Callable[[list[Any]], list[Any]]


def _processor(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processor for one value."""
    return column.type._cached_bind_processor(dialect)  # type: ignore[no-any-return]


def _column_processor(column: Column[Any], dialect: Dialect) -> _ColumnProc | None:
    """A function processing a whole column of a batch, or None when values pass as they are.

    A column of plain ``bool``s passes as is (1/0 where the database has no boolean type),
    so do columns of plain ``float``s and, on PostgreSQL, of ``bytes``; on SQLite, a column of plain naive datetimes becomes SQLAlchemy's text form with
    one C call per value; any other column takes the type's own bind processor, value by
    value.
    """
    proc = _processor(column, dialect)
    if proc is None:
        return None
    if proc is to_float:  # floats on SQLite
        return _native(proc, float)
    impl = type(column.type.dialect_impl(dialect))
    if impl is Boolean:
        return _native(proc, bool, None if dialect.supports_native_boolean else int)
    if impl is LargeBinary and dialect.name == "postgresql":
        return _native(proc, bytes)
    if impl is SQLITE_DATETIME and _default_sqlite_format(column, dialect):
        return _sqlite_datetimes(proc)
    return lambda values: list(map(proc, values))


def _default_sqlite_format(column: Column[Any], dialect: Dialect) -> bool:
    impl = column.type.dialect_impl(dialect)
    return impl._storage_format == SQLITE_DATETIME._storage_format  # type: ignore[attr-defined,no-any-return]


def _native(proc: Callable[[Any], Any], kind: type, cast: type | None = None) -> _ColumnProc:
    """Values all of ``kind`` (or NULL, without ``cast``) go to the driver as they are, or
    through ``cast`` (sqlite3 binds an int faster than a bool)."""
    accepted = {kind} if cast else {kind, type(None)}

    def process(values: list[Any]) -> list[Any]:
        if set(map(type, values)) <= accepted:
            return values if cast is None else list(map(cast, values))
        return list(map(proc, values))

    return process


_ISO = methodcaller("isoformat", " ", "microseconds")
_ISO_LENGTH = len("2000-01-01 00:00:00.000000")


def _sqlite_datetimes(proc: Callable[[Any], Any]) -> _ColumnProc:
    def process(values: list[Any]) -> list[Any]:
        if set(map(type, values)) == {datetime}:
            text = list(map(_ISO, values))
            if max(map(len, text)) == _ISO_LENGTH:  # naive: nothing after the microseconds
                return text
        return list(map(proc, values))

    return process


class _Writer:
    def __init__(self, connection: Connection, table: Table) -> None:
        self.connection = connection
        self.table = table
        self._plan: tuple[tuple[str, ...], _Convert] | None = None

    def _plan_for(self, row: Mapping[str, Any]) -> tuple[tuple[str, ...], _Convert]:
        """Column order and a batch -> tuples function, computed once from the first row."""
        keys = tuple(row)
        if self._plan is not None and self._plan[0] == keys:
            return self._plan
        columns = self.table.c
        self._check_keys(keys)
        constants = {
            c.key: c.default.arg  # type: ignore[attr-defined]
            for c in columns
            if c.key not in keys and c.default is not None and c.default.is_scalar
        }
        names = keys + tuple(constants)
        dialect = self.connection.dialect
        column_getters = [itemgetter(key) for key in keys]
        self._constants = [
            proc(value) if (proc := _processor(columns[key], dialect)) else value
            for key, value in constants.items()
        ]
        processors = [
            (i, proc)
            for i, key in enumerate(keys)
            if (proc := _column_processor(columns[key], dialect)) is not None
        ]

        def convert(batch: list[Mapping[str, Any]]) -> list[Sequence[Any]]:
            """The batch column by column (constants last), so the loops run in C."""
            try:
                values: list[Sequence[Any]] = [list(map(get, batch)) for get in column_getters]
            except KeyError as exc:
                raise self._lacks(exc) from None
            for i, proc in processors:
                values[i] = proc(values[i])  # type: ignore[arg-type]
            values.extend([value] * len(batch) for value in self._constants)
            return values

        self._plan = (keys, convert)
        self._names = names
        self._processed = {keys[i] for i, _ in processors}
        plain = not processors and not self._constants and len(keys) > 1
        self._row_getter = itemgetter(*keys) if plain else None
        return self._plan

    def _lacks(self, exc: KeyError) -> UsageError:
        return UsageError(
            f"bulk_insert into '{self.table.name}': a row lacks column {exc}",
            hint="every row must have the same keys",
        )

    def _rows(self, batch: list[Mapping[str, Any]]) -> Iterable[tuple[Any, ...]]:
        """The batch as tuples: straight from the rows when no value needs converting."""
        if self._row_getter is None:
            return zip(*self._plan_for(batch[0])[1](batch))
        try:
            return list(map(self._row_getter, batch))
        except KeyError as exc:
            raise self._lacks(exc) from None

    def _check_keys(self, keys: Sequence[str]) -> None:
        columns = self.table.c
        unknown = [k for k in keys if k not in columns]
        if unknown:
            raise UsageError(
                f"bulk_insert into '{self.table.name}': unknown column {', '.join(map(repr, unknown))}",
                hint=f"columns: {', '.join(columns.keys())}",
            )

    def _has_python_callables(self, keys: Sequence[str]) -> bool:
        return any(
            c.key not in keys and c.default is not None and not c.default.is_scalar
            for c in self.table.c
        )

    def write(self, batch: list[Mapping[str, Any]]) -> int:
        if self._has_python_callables(tuple(batch[0])):
            self._check_keys(tuple(batch[0]))
            self.connection.execute(insert(self.table), batch)
            return len(batch)
        self._plan_for(batch[0])
        return self._write_batch(batch)

    def _column_list(self) -> str:
        quote = self.connection.dialect.identifier_preparer.quote
        return ", ".join(quote(self.table.c[k].name) for k in self._names)

    def _table_name(self) -> str:
        return self.connection.dialect.identifier_preparer.format_table(self.table)

    def _write_batch(self, batch: list[Mapping[str, Any]]) -> int:
        raise NotImplementedError

    @contextmanager
    def _driver_errors(self, sql: str) -> Iterator[None]:
        """Raise the driver's errors as SQLAlchemy's (``IntegrityError``...), like Core does."""
        dbapi = self.connection.dialect.loaded_dbapi
        try:
            yield
        except dbapi.Error as exc:
            raise DBAPIError.instance(sql, None, exc, dbapi.Error) from exc


class SqliteWriter(_Writer):
    def _write_batch(self, batch: list[Mapping[str, Any]]) -> int:
        rows = self._rows(batch)
        marks = ", ".join("?" * len(self._names))
        sql = f"INSERT INTO {self._table_name()} ({self._column_list()}) VALUES ({marks})"
        cursor = self.connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with self._driver_errors(sql):
                cursor.executemany(sql, rows)  # type: ignore[arg-type]
        finally:
            cursor.close()
        return len(batch)


class PostgresWriter(_Writer):
    def write(self, batch: list[Mapping[str, Any]]) -> int:
        if len(batch) < COPY_MIN_ROWS:
            self._check_keys(tuple(batch[0]))
            self.connection.execute(insert(self.table), batch)
            return len(batch)
        return super().write(batch)

    _oids: list[int] | None = None  # per column of the plan, when every one may go binary

    def _plan_for(self, row: Mapping[str, Any]) -> tuple[tuple[str, ...], _Convert]:
        plan = self._plan
        result = super()._plan_for(row)
        if result is not plan:
            self._oids = self._binary_oids()
        return result

    def _binary_oids(self) -> list[int] | None:
        """The type oid of each column when binary COPY may carry them all, else None."""
        if self._processed - self._native_keys():
            return None
        sql = (
            "SELECT attname, atttypid::int FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        )
        raw = self.connection.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            types = dict(cursor.execute(sql, [self._table_name()]).fetchall())
        oids: list[int] = [types.get(self.table.c[key].name, 0) for key in self._names]
        if any(oid not in _BINARY_TYPES for oid in oids):
            return None
        constants = zip(oids[len(oids) - len(self._constants) :], self._constants)
        if not all(_fits(oid, [value]) for oid, value in constants):
            return None
        return oids

    def _native_keys(self) -> set[str]:
        """Processed columns whose values may still reach binary COPY unchanged."""
        dialect = self.connection.dialect
        return {
            key for key in self._processed
            if type(self.table.c[key].type.dialect_impl(dialect)) in (Boolean, LargeBinary)
        }

    def _write_batch(self, batch: list[Mapping[str, Any]]) -> int:
        columns = self._plan_for(batch[0])[1](batch)
        oids = self._oids
        binary = oids is not None and all(map(_fits, oids, columns))
        fmt = " (FORMAT BINARY)" if binary else ""
        sql = f"COPY {self._table_name()} ({self._column_list()}) FROM STDIN{fmt}"
        raw = self.connection.connection.driver_connection
        with self._driver_errors(sql), raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
            if binary:
                copy.set_types(oids)  # type: ignore[arg-type]
            for row in zip(*columns):
                copy.write_row(row)
        return len(batch)


#: PostgreSQL type oid -> the Python types psycopg writes in binary COPY for it, exactly as
#: the text form would be read (None, NULL, fits every type). Other types go as text.
_BINARY_TYPES: dict[int, frozenset[type]] = {
    16: frozenset({bool}),  # boolean
    20: frozenset({int}),  # bigint
    21: frozenset({int}),  # smallint
    23: frozenset({int}),  # integer
    700: frozenset({float, int}),  # real
    701: frozenset({float, int}),  # double precision
    25: frozenset({str}),  # text
    1043: frozenset({str}),  # varchar
    17: frozenset({bytes}),  # bytea
    1082: frozenset({date}),  # date
    1114: frozenset({datetime}),  # timestamp: naive values only
    1184: frozenset({datetime}),  # timestamptz: aware values only
}
_NONE = type(None)
_TZINFO = attrgetter("tzinfo")


def _fits(oid: int, values: Sequence[Any]) -> bool:
    """Whether binary COPY writes every value of a column as text COPY would."""
    types = set(map(type, values))
    types.discard(_NONE)
    if not types <= _BINARY_TYPES[oid]:
        return False
    if oid in (1114, 1184) and types:
        zones = set(map(_TZINFO, filter(None, values)))  # datetimes are never falsy
        return zones == {None} if oid == 1114 else None not in zones
    return True


def writer_for(connection: Connection, table: Table) -> _Writer:
    name = connection.dialect.name
    if name == "sqlite":
        return SqliteWriter(connection, table)
    if name == "postgresql":
        return PostgresWriter(connection, table)
    raise UsageError(f"bulk_insert does not support the '{name}' dialect")
