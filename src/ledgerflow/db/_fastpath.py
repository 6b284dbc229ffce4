"""The fastest insert path each driver offers, used by :func:`ledgerflow.db.bulk_insert`.

SQLite: one prepared ``INSERT`` fed to ``sqlite3``'s ``executemany``.
PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3 for large batches, Core executemany
(insertmanyvalues) for small ones. Values pass through each column type's bind processor,
so what lands in the table is what the ORM would have written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, insert

from ledgerflow.errors import UsageError

COPY_MIN_ROWS = 500


class _Writer:
    def __init__(self, connection: Connection, table: Table) -> None:
        self.connection = connection
        self.table = table
        self._plan: tuple[tuple[str, ...], Callable[[Mapping[str, Any]], tuple[Any, ...]]] | None = None

    def _plan_for(self, row: Mapping[str, Any]) -> tuple[tuple[str, ...], Callable[..., tuple[Any, ...]]]:
        """Column order and a row -> tuple function, computed once from the first row."""
        keys = tuple(row)
        if self._plan is not None and self._plan[0] == keys:
            return self._plan
        columns = self.table.c
        self._check_keys(keys)
        constants = {
            c.key: c.default.arg
            for c in columns
            if c.key not in keys and c.default is not None and c.default.is_scalar
        }
        names = keys + tuple(constants)
        dialect = self.connection.dialect
        processors = [
            (i, proc)
            for i, key in enumerate(names)
            if (proc := columns[key].type._cached_bind_processor(dialect)) is not None
        ]
        getter = itemgetter(*keys)
        extra = tuple(constants.values())

        def to_tuple(item: Mapping[str, Any]) -> tuple[Any, ...]:
            try:
                values = getter(item)
            except KeyError as exc:
                raise UsageError(
                    f"bulk_insert into '{self.table.name}': a row lacks column {exc}",
                    hint="every row must have the same keys",
                ) from None
            if len(keys) == 1:
                values = (values,)
            if extra:
                values = (*values, *extra)
            if processors:
                values = list(values)
                for i, proc in processors:
                    values[i] = proc(values[i])
            return tuple(values)

        self._plan = (keys, to_tuple)
        self._names = names
        return self._plan

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
        keys, to_tuple = self._plan_for(batch[0])
        return self._write_tuples(map(to_tuple, batch), len(batch))

    def _column_list(self) -> str:
        quote = self.connection.dialect.identifier_preparer.quote
        return ", ".join(quote(self.table.c[k].name) for k in self._names)

    def _table_name(self) -> str:
        return self.connection.dialect.identifier_preparer.format_table(self.table)

    def _write_tuples(self, rows: Any, count: int) -> int:
        raise NotImplementedError


class SqliteWriter(_Writer):
    def _write_tuples(self, rows: Any, count: int) -> int:
        marks = ", ".join("?" * len(self._names))
        sql = f"INSERT INTO {self._table_name()} ({self._column_list()}) VALUES ({marks})"
        cursor = self.connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()
        return count


class PostgresWriter(_Writer):
    def write(self, batch: list[Mapping[str, Any]]) -> int:
        if len(batch) < COPY_MIN_ROWS:
            self._check_keys(tuple(batch[0]))
            self.connection.execute(insert(self.table), batch)
            return len(batch)
        return super().write(batch)

    def _write_tuples(self, rows: Any, count: int) -> int:
        sql = f"COPY {self._table_name()} ({self._column_list()}) FROM STDIN"
        raw = self.connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
        return count


def writer_for(connection: Connection, table: Table) -> _Writer:
    name = connection.dialect.name
    if name == "sqlite":
        return SqliteWriter(connection, table)
    if name == "postgresql":
        return PostgresWriter(connection, table)
    raise UsageError(f"bulk_insert does not support the '{name}' dialect")
