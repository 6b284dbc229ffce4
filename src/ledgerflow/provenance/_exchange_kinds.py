"""The record kinds of an export file and how each row is written to and read from JSON.

One line per record: ``{"kind": "value", "key": ..., "data": {...}}``. ``data`` holds every
column of the row (bytes in base64, times in ISO 8601 UTC); ``key`` is the row's natural key
(a string, or a list for composite keys), checked against ``data`` on import. A value kept
in the value store carries its bytes in a ``"blob"`` member (base64).

Kinds are derived from the ledger tables, so a column added to the schema is exported
without touching this module. A log record has no natural key (its id is a local
counter): its key is a digest of its run, task run, time, level, logger and message, and
its id is not exported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    select,
    type_coerce,
)

from ledgerflow.db.times import utc
from ledgerflow.errors import ImportRecordsError
from ledgerflow.hashing import hash_bytes
from ledgerflow.ledger.schema import LedgerBase

#: (kind, table) in an order where every record comes after those it refers to.
KIND_TABLES: tuple[tuple[str, str], ...] = (
    ("configuration", "lf_configuration"),
    ("task_def", "lf_task_def"),
    ("value", "lf_value"),
    ("value_edge", "lf_value_edge"),
    ("file", "lf_file"),
    ("argument", "lf_argument"),
    ("call", "lf_call"),
    ("call_edge", "lf_call_edge"),
    ("run", "lf_run"),
    ("task_run", "lf_task_run"),
    ("log_record", "lf_log_record"),
    ("written", "lf_written"),  # before the cache entries whose hits it keeps honest
    ("cache_entry", "lf_cache_entry"),
    ("tag", "lf_tag"),
)

#: Kinds whose rows change after they are written (a running run ends): an import updates a
#: row still ``running``/``pending`` in the target when the incoming copy has ended.
MUTABLE_KINDS = frozenset({"run", "task_run"})
LOG_IDENTITY = ("run_id", "task_run_id", "created_at", "level", "logger", "message")

FIX_HINT = (
    "fix or remove that line (files written by `ledgerflow export` are valid); "
    "nothing was imported"
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


_NO_DEFAULT = object()


class RecordError(Exception):
    """A field of one record is invalid (turned into an ImportRecordsError with its line)."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # str | int | float | bool | datetime | bytes
    nullable: bool
    default: Any
    has_default: bool
    max_length: int | None

    @classmethod
    def of(cls, column: Column[Any]) -> Field:
        kind = _type_name(column)
        default = column.default
        scalar = default is not None and getattr(default, "is_scalar", False)
        length = getattr(column.type, "length", None) if kind == "str" else None
        return cls(column.key, kind, bool(column.nullable), default.arg if scalar else None,  # type: ignore[union-attr]
                   scalar, length)


def _type_name(column: Column[Any]) -> str:
    sql_type = column.type
    for python, types in (
        ("bytes", (LargeBinary,)),
        ("datetime", (DateTime,)),
        ("bool", (Boolean,)),
        ("float", (Float,)),
        ("int", (Integer,)),
        ("str", (String,)),
    ):
        if isinstance(sql_type, types):
            return python
    raise TypeError(f"column {column} has a type the export format does not handle: {sql_type}")


def iso_time(value: Any) -> str:
    """ISO 8601 UTC text of a stored time: a datetime, or SQLite's raw ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if type(value) is str:
        if len(value) == 26 and value[10] == " ":
            fraction = "" if value.endswith(".000000") else value[19:]
            return f"{value[:10]}T{value[11:19]}{fraction}+00:00"
        value = datetime.fromisoformat(value)
    if value.tzinfo is not UTC:
        value = utc(value)
    return str(value.isoformat())


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is UTC else utc(moment)


def sqlite_time(moment: datetime) -> str:
    """A time as SQLAlchemy stores it in SQLite (naive UTC, microseconds always shown)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


_EXPECTED: dict[str, tuple[type, Callable[[Any], Any] | None, str]] = {
    "str": (str, None, "a string"),
    "int": (int, None, "an integer"),
    "float": (float, None, "a number"),
    "bool": (bool, None, "true or false"),
    "datetime": (str, parse_time, "an ISO 8601 time"),
    "bytes": (str, _unb64, "base64 text"),
}


#: Facts about a row in one database, not about the record: who wrote it there. An import
#: is written by the importer (on PostgreSQL the server sets it), so it never travels.
LOCAL_COLUMNS = frozenset({"writer"})


class Kind:
    """One record kind: its table, natural key and column codecs. Rows are tuples in
    :attr:`columns` order."""

    def __init__(self, name: str, table: Table) -> None:
        self.name = name
        self.table = table
        self.mutable = name in MUTABLE_KINDS
        self.keyless = name == "log_record"
        columns = [
            c for c in table.columns
            if not (self.keyless and c.key == "id") and c.key not in LOCAL_COLUMNS
        ]
        self.fields = tuple(Field.of(c) for c in columns)
        self.columns = tuple(f.name for f in self.fields)
        self.index = {name: i for i, name in enumerate(self.columns)}
        self.key_columns = tuple(c.key for c in table.primary_key.columns)
        positions = [self.index[c] for c in self.key_columns if c in self.index]
        self.sort_key = itemgetter(*positions) if positions else None
        self.times = tuple(i for i, f in enumerate(self.fields) if f.type == "datetime")
        self.binaries = tuple(i for i, f in enumerate(self.fields) if f.type == "bytes")
        self._names = frozenset(self.columns)
        self._plan = tuple(
            (f.name, *_EXPECTED[f.type][:2], f.max_length, f.nullable,
             f.default if f.has_default else _NO_DEFAULT, f)
            for f in self.fields
        )

    def __repr__(self) -> str:
        return f"<Kind {self.name}>"

    def select(self, *, raw_times: bool = False) -> Select[Any]:
        """SELECT of the kind's columns; ``raw_times`` leaves SQLite's time text unparsed."""
        columns: list[Any] = [self.table.c[name] for name in self.columns]
        if raw_times:
            columns = [
                type_coerce(c, String).label(c.name) if i in self.times else c
                for i, c in enumerate(columns)
            ]
        return select(*columns)

    def encode(self, row: Sequence[Any]) -> dict[str, Any]:
        """The JSON-ready ``data`` of a row read from the database."""
        data = dict(zip(self.columns, row, strict=True))
        names = self.columns
        for i in self.times:
            if row[i] is not None:
                data[names[i]] = iso_time(row[i])
        for i in self.binaries:
            if row[i] is not None:
                data[names[i]] = _b64(bytes(row[i]))
        return data

    def key(self, data: Mapping[str, Any]) -> Any:
        """The natural key of an encoded row: a string, or a list for a composite key."""
        if self.keyless:
            return hash_bytes(self._identity(data))
        if len(self.key_columns) == 1:
            return data.get(self.key_columns[0])
        return [data.get(c) for c in self.key_columns]

    def _identity(self, data: Mapping[str, Any]) -> bytes:
        return _COMPACT([data.get(c) for c in LOG_IDENTITY]).encode("utf-8")

    def matches(self, data: Mapping[str, Any], key: Any) -> bool:
        """Whether ``key`` is the key of ``data``. Files written before log keys were
        BLAKE2b carry the SHA-1 of the same identity: still read, never written."""
        if key == self.key(data):
            return True
        if self.name == "cache_entry" and key == [data.get("task_hash"), data.get("args_hash")]:
            return True  # written before a call's entry had versions (keyed by its time too)
        legacy = hashlib.sha1(self._identity(data)).hexdigest() if self.keyless else None
        return legacy is not None and key == legacy

    def decode(self, data: Any) -> tuple[Any, ...]:
        """A validated row (Python values) from an encoded ``data`` object."""
        if type(data) is not dict:
            raise RecordError("'data' must be an object")
        if not self._names.issuperset(data):
            unknown = sorted(map(repr, data.keys() - self._names))
            raise RecordError(
                f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (is this "
                "ledger older than the one that wrote the file? run `ledgerflow db upgrade`)"
            )
        row: list[Any] = []
        append = row.append
        get = data.get
        for name, expected, convert, limit, nullable, default, field in self._plan:
            value: Any = get(name)
            if value is None:
                if default is not _NO_DEFAULT and name not in data:
                    append(default)
                elif nullable:
                    append(None)
                else:
                    raise RecordError(f"field '{name}' is required")
            elif type(value) is expected:
                if limit is not None and len(cast(str, value)) > limit:
                    raise RecordError(f"field '{name}' is longer than {limit} characters")
                if convert is None:
                    append(value)
                else:
                    try:
                        append(convert(value))
                    except (ValueError, binascii.Error):
                        raise _wrong(field, value) from None
            elif field.type == "float" and type(value) is int:
                append(float(value))
            else:
                raise _wrong(field, value)
        return tuple(row)


def _wrong(field: Field, value: Any) -> RecordError:
    wanted = _EXPECTED[field.type][2]
    return RecordError(f"field '{field.name}' must be {wanted}, got {json.dumps(value)[:60]}")


def _build_kinds() -> dict[str, Kind]:
    tables = LedgerBase.metadata.tables
    return {name: Kind(name, tables[table]) for name, table in KIND_TABLES}


KINDS: dict[str, Kind] = _build_kinds()
ORDER: tuple[Kind, ...] = tuple(KINDS.values())


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_PARSE = json.JSONDecoder().raw_decode


def encode_line(kind: Kind, row: Sequence[Any], blob: bytes | None = None) -> str:
    """One line of an export file (with its newline)."""
    data = kind.encode(row)
    record = {"kind": kind.name, "key": kind.key(data), "data": data}
    if blob is not None:
        record["blob"] = _b64(blob)
    return _COMPACT(record) + "\n"


@dataclass
class Record:
    kind: Kind
    row: tuple[Any, ...]
    blob: bytes | None
    line: int


def decode_line(text: str | bytes, line: int, source: str) -> Record | None:
    """The record of one line (None for a blank line); an ImportRecordsError names the line."""
    try:
        return _decode(text, line)
    except RecordError as exc:
        raise ImportRecordsError(f"{source}, line {line}: {exc}", hint=FIX_HINT) from None


def _decode(text: str | bytes, line: int) -> Record | None:
    try:
        line_text = text if type(text) is str else text.decode("utf-8")  # type: ignore[union-attr]
        try:
            record, end = _PARSE(line_text)
        except ValueError:  # leading blanks, or not JSON (then this raises again)
            stripped = line_text.lstrip()
            record, end = _PARSE(stripped)
            end += len(line_text) - len(stripped)
        if end < len(line_text) and line_text[end:].strip():
            raise ValueError(f"extra data after the object at column {end + 1}")
    except (ValueError, UnicodeDecodeError) as exc:
        if not text.strip():
            return None
        raise RecordError(f"not valid JSON ({exc})") from None
    if type(record) is not dict:
        raise RecordError("a record must be a JSON object")
    if len(record) != 3 or "data" not in record or "key" not in record or "kind" not in record:
        missing = [k for k in ("kind", "key", "data") if k not in record]
        if missing:
            raise RecordError(f"missing member {', '.join(map(repr, missing))}")
        extra = record.keys() - {"kind", "key", "data", "blob"}
        if extra:
            raise RecordError(f"unknown member {', '.join(sorted(map(repr, extra)))}")
    name = record["kind"]
    kind = KINDS.get(name) if type(name) is str else None
    if kind is None:
        raise RecordError(f"unknown kind {json.dumps(name)[:40]} (known: {', '.join(KINDS)})")
    data = record["data"]
    row = kind.decode(data)
    if not kind.matches(data, record["key"]):
        raise RecordError(f"key {json.dumps(record['key'])[:100]} does not match the {name}'s data")
    blob = record.get("blob")
    if blob is not None:
        if name != "value":
            raise RecordError("only a value record may carry a 'blob'")
        if type(blob) is not str:
            raise RecordError("'blob' must be base64 text")
        try:
            blob = _unb64(blob)
        except (binascii.Error, ValueError):
            raise RecordError("'blob' is not valid base64") from None
    if name == "value":
        _check_value(kind, row, blob)
    return Record(kind, row, blob, line)


def _check_value(kind: Kind, row: tuple[Any, ...], blob: bytes | None) -> None:
    inline, store_key = row[kind.index["inline"]], row[kind.index["store_key"]]
    if inline is not None and store_key is not None:
        raise RecordError("a value has either 'inline' bytes or a 'store_key', not both")
    if blob is not None and store_key is None:
        raise RecordError("a value with a 'blob' needs a 'store_key'")
    size = row[kind.index["size"]]
    data = inline if inline is not None else blob
    if size is not None and data is not None and len(data) != size:
        raise RecordError(f"the value's bytes ({len(data)}) do not match its size ({size})")
