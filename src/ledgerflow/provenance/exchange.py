"""Moving ledger records between databases: export/import as JSON lines, push/pull between binds.

An export file holds one record per line, ``{"kind": ..., "key": ..., "data": {...}}``,
content-addressed records once, every record after those it refers to (the format is
described in :mod:`ledgerflow.provenance._exchange_kinds` and docs/schema.md). Because
provenance records are immutable and keyed by their content, importing is idempotent: a
record is added only when its natural key is not in the ledger yet (see
:mod:`ledgerflow.provenance._exchange_write`), so a second import adds nothing and an import
into a ledger that already holds some of the records adds only the rest. Log records, which
have no natural key, are matched by content; a run or task run still ``running`` in the
ledger is updated from a copy that has ended. A whole import is one transaction, read and
written in batches of 5,000 records (memory stays flat): a corrupt line stops it, names its
line number, and leaves the ledger as it was.

``push``/``pull`` copy the same records between the default database and another
configured one (say a laptop's SQLite and the team's PostgreSQL) without a file.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, inspect

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.db.model import DEFAULT_BIND
from ledgerflow.db.roles import operator_role
from ledgerflow.errors import ImportRecordsError, SchemaOutdatedError, UsageError, ValueStoreError
from ledgerflow.provenance._exchange_kinds import KINDS, ORDER, decode_line, encode_line
from ledgerflow.provenance._exchange_reach import read_records, select_runs
from ledgerflow.provenance._exchange_write import BATCH_ROWS, RecordWriter

Progress = Callable[[int], None]
PROGRESS_EVERY = 5_000

__all__ = ["ImportReport", "export", "import_", "pull", "push", "value_store"]


@dataclass
class ImportReport:
    """What an import (or a push/pull) did, per record kind."""

    added: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    @property
    def total_added(self) -> int:
        return sum(self.added.values())

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def total_updated(self) -> int:
        return sum(self.updated.values())

    @property
    def records(self) -> int:
        return self.total_added + self.total_skipped + self.total_updated

    def to_json(self) -> dict[str, Any]:
        return {"added": dict(self.added), "skipped": dict(self.skipped),
                "updated": dict(self.updated), "total_added": self.total_added,
                "total_skipped": self.total_skipped, "total_updated": self.total_updated}

    @classmethod
    def of(cls, writer: RecordWriter) -> ImportReport:
        names = [kind.name for kind in ORDER]
        return cls(
            added={n: writer.added[n] for n in names},
            skipped={n: writer.skipped[n] for n in names},
            updated={n: writer.updated[n] for n in names},
        )


def value_store(settings: Settings, engine: Engine | None = None) -> Any:
    """The project's value store (:func:`ledgerflow.values.open_store`); ``engine`` (of the
    default database) is the connection a store kept in the ledger uses."""
    from ledgerflow.values import open_store

    return open_store(settings, engine=engine)


def cutoff(since: timedelta | datetime | None) -> datetime | None:
    """A UTC time from ``since``: a moment, or a span back from now."""
    if since is None or isinstance(since, datetime):
        return since
    if since < timedelta(0):
        raise UsageError(f"a time span must not be negative (got {since})")
    return datetime.now(UTC) - since


def require_ledger(engine: Engine, settings: Settings, bind: str) -> None:
    """Refuse a database without (up-to-date) ledger tables, saying how to migrate it."""
    db = settings.databases[bind]
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    missing = [kind.table.name for kind in ORDER if kind.table.name not in present]
    if bind == DEFAULT_BIND:
        fix = "ledgerflow db upgrade"
    else:  # the framework's migrations run on a project's default database
        fix = (f"run `ledgerflow db upgrade` in a project whose default database is "
               f"{db.describe()}")
    if missing:
        raise SchemaOutdatedError(
            f"database '{bind}' ({db.describe()}) holds no ledger "
            f"(missing table{'s' if len(missing) > 1 else ''} {', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''})",
            hint=f"migrate it first: {fix}",
        )
    for kind in ORDER:
        columns = {c["name"] for c in inspector.get_columns(kind.table.name)}
        lacking = [c.name for c in kind.table.columns if c.name not in columns]
        if lacking:
            raise SchemaOutdatedError(
                f"database '{bind}' ({db.describe()}) has an older ledger: "
                f"{kind.table.name} lacks {', '.join(lacking)}",
                hint=f"migrate it first: {fix}",
            )


def _reader(database: Database, bind: str) -> contextlib.AbstractContextManager[Connection]:
    """A read transaction that sees one snapshot of the ledger."""
    conn = database.engine(bind).connect()
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        conn.exec_driver_sql("SET TIME ZONE 'UTC'")
    return conn


def _output(out: str | os.PathLike[str] | IO[str]) -> contextlib.AbstractContextManager[IO[str]]:
    from ledgerflow.provenance._atomic import atomic_stream

    return atomic_stream(out)


def export(
    settings: Settings,
    runs: Sequence[str] | None = None,
    since: timedelta | datetime | None = None,
    out: str | os.PathLike[str] | IO[str] = "-",
    *,
    bind: str = DEFAULT_BIND,
    progress: Progress | None = None,
) -> int:
    """Write the records the selected runs reach as JSON lines; returns how many.

    ``runs`` are run ids or unique prefixes, ``since`` keeps runs started within a span (or
    after a moment); with neither, the whole ledger is written. ``out`` is a path, ``"-"``
    for stdout, or a text stream. Values kept in the value store carry their bytes.
    """
    database = Database(settings, read_only=True)
    try:
        engine = database.engine(bind)
        require_ledger(engine, settings, bind)
        store = None
        count = 0
        store_at = KINDS["value"].index["store_key"]
        with _reader(database, bind) as conn, _output(out) as stream:
            selected = select_runs(conn, runs, cutoff(since))
            write = stream.write
            for kind, row in read_records(conn, selected, raw_times=True):
                blob = None
                if kind.name == "value" and row[store_at] is not None:
                    store = store or value_store(settings)
                    blob = store.get(row[store_at])
                write(encode_line(kind, row, blob))
                count += 1
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(count)
        if progress is not None:
            progress(count)
        return count
    finally:
        database.dispose()


@contextlib.contextmanager
def _lines(source: str | os.PathLike[str] | IO[Any]) -> Iterator[tuple[IO[Any], str]]:
    if hasattr(source, "read"):
        yield source, str(getattr(source, "name", "<stream>"))  # type: ignore[misc]
        return
    if os.fspath(source) == "-":  # type: ignore[arg-type]
        yield sys.stdin.buffer, "<stdin>"
        return
    path = Path(source)  # type: ignore[arg-type]
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with stream:
        yield stream, str(path)


class _BlobSink:
    """Writes imported blobs into the value store; forgets the new ones if the import fails."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Any = None
        self.engine: Engine | None = None  # the import's, for a store kept in the ledger
        self.written: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        if self.store is None:
            self.store = value_store(self.settings, self.engine)
        if not self.store.exists(key):
            self.store.put(key, data)
            self.written.append(key)

    def has(self, key: str) -> bool:
        if self.store is None:
            self.store = value_store(self.settings, self.engine)
        return bool(self.store.exists(key))

    def undo(self) -> None:
        """Forget the blobs this import wrote; one that cannot be (a store in the ledger,
        to the user role, only grows) stays behind, unreferenced and harmless."""
        for key in self.written:
            try:
                self.store.delete(key)
            except ValueStoreError:
                pass


def import_(
    settings: Settings,
    path: str | os.PathLike[str] | IO[Any],
    *,
    bind: str = DEFAULT_BIND,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Add the records of an export file that the ledger lacks, in one transaction.

    Every line is checked (JSON, kind, fields, key, value bytes); a bad line raises
    :class:`~ledgerflow.errors.ImportRecordsError` naming it, and nothing is committed.
    On PostgreSQL it connects as the admin when one is configured; the user role may add
    records but an import that would overwrite another role's runs raises
    :class:`~ledgerflow.errors.PrivilegeError`.
    """
    config = Database(settings).config(bind)
    database = Database(settings, operator_role(config))  # overwriting is the admin's
    blobs = _BlobSink(settings)
    try:
        engine = database.engine(bind)
        require_ledger(engine, settings, bind)
        blobs.engine = engine if bind == DEFAULT_BIND else None
        with _lines(path) as (stream, name), engine.begin() as conn, RecordWriter(
            conn, source=name, batch_rows=batch_rows, db=config
        ) as writer:
            number = 0
            store_at = KINDS["value"].index["store_key"]
            for number, text in enumerate(stream, start=1):
                record = decode_line(text, number, name)
                if record is None:
                    continue
                if record.blob is not None:
                    blobs.put(record.row[store_at], record.blob)
                elif (
                    record.kind.name == "value"
                    and record.row[store_at] is not None
                    and not blobs.has(record.row[store_at])
                ):
                    raise ImportRecordsError(
                        f"{name}, line {number}: value {record.row[0]} is kept in a value "
                        "store but the record carries no 'blob' and the store here does not "
                        "hold it",
                        hint="export it again with `ledgerflow export`; nothing was imported",
                    )
                writer.add(record.kind, record.row, number)
                if progress is not None and number % PROGRESS_EVERY == 0:
                    progress(number)
        if progress is not None:
            progress(number)
        return ImportReport.of(writer)
    except BaseException:
        blobs.undo()
        raise
    finally:
        database.dispose()


def _copy(
    settings: Settings,
    source: str,
    target: str,
    runs: Sequence[str] | None,
    since: timedelta | datetime | None,
    progress: Progress | None,
) -> ImportReport:
    if source == target:
        raise UsageError(f"cannot copy the '{source}' database onto itself")
    reading = Database(settings, read_only=True)
    config = reading.config(target)
    writing = Database(settings, operator_role(config))  # overwriting is the admin's
    try:
        for bind in (source, target):
            engine = (reading if bind == source else writing).engine(bind)
            require_ledger(engine, settings, bind)
        describe = settings.databases[source].describe()
        with _reader(reading, source) as src, writing.engine(target).begin() as dst, RecordWriter(
            dst, source=f"database '{source}' ({describe})", db=config
        ) as writer:
            count = 0
            for kind, row in read_records(src, select_runs(src, runs, cutoff(since))):
                writer.add(kind, row)
                count += 1
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(count)
        if progress is not None:
            progress(count)
        return ImportReport.of(writer)
    finally:
        reading.dispose()
        writing.dispose()


def push(
    settings: Settings,
    bind: str,
    *,
    runs: Sequence[str] | None = None,
    since: timedelta | datetime | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the default ledger's records (or the selected runs') into the database ``bind``.

    Both databases belong to this project, so they share its value store: blobs are not
    copied. The target must hold an up-to-date ledger (``ledgerflow db upgrade --bind``).
    """
    _known(settings, bind)
    return _copy(settings, DEFAULT_BIND, bind, runs, since, progress)


def pull(
    settings: Settings,
    bind: str,
    *,
    runs: Sequence[str] | None = None,
    since: timedelta | datetime | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the records of the database ``bind`` (or of its selected runs) into the default ledger."""
    _known(settings, bind)
    return _copy(settings, bind, DEFAULT_BIND, runs, since, progress)


def _known(settings: Settings, bind: str) -> None:
    if bind not in settings.databases:
        known = ", ".join(sorted(settings.databases))
        raise UsageError(
            f"no database named '{bind}' in {settings.path or 'the settings'} (configured: {known})",
            hint=f"add it under databases: in ledgerflow.yml, e.g. {bind}: {{dialect: postgresql, ...}}",
        )

