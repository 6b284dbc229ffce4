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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, Float, Integer, LargeBinary, String, Table

from ledgerflow.errors import ImportRecordsError
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
    ("cache_entry", "lf_cache_entry"),
    ("tag", "lf_tag"),
)

#: Kinds whose rows change after they are written (a running run ends): an import updates a
#: row still ``running``/``pending`` in the target when the incoming copy has ended.
MUTABLE_KINDS = frozenset({"run", "task_run"})
OPEN_STATES = ("pending", "running")

LOG_IDENTITY = ("run_id", "task_run_id", "created_at", "level", "logger", "message")

FIX_HINT = (
    "fix or remove that line (files written by `ledgerflow export` are valid); "
    "nothing was imported"
)


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already (as the ledger stores it)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def naive_utc(moment: datetime) -> datetime:
    return utc(moment).replace(tzinfo=None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


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


def _encoder(field: Field) -> Callable[[Any], Any]:
    if field.type == "bytes":
        return lambda v: None if v is None else _b64(bytes(v))
    if field.type == "datetime":
        return lambda v: None if v is None else utc(v).isoformat()
    return lambda v: v


def _decoder(field: Field) -> Callable[[Any], Any]:
    name, kind = field.name, field.type

    def wrong(value: Any, expected: str) -> RecordError:
        return RecordError(f"field '{name}' must be {expected}, got {json.dumps(value)[:60]}")

    if kind == "str":
        limit = field.max_length

        def as_str(value: Any) -> Any:
            if not isinstance(value, str):
                raise wrong(value, "a string")
            if limit is not None and len(value) > limit:
                raise RecordError(f"field '{name}' is longer than {limit} characters")
            return value

        return as_str
    if kind == "int":

        def as_int(value: Any) -> Any:
            if not isinstance(value, int) or isinstance(value, bool):
                raise wrong(value, "an integer")
            return value

        return as_int
    if kind == "float":

        def as_float(value: Any) -> Any:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise wrong(value, "a number")
            return float(value)

        return as_float
    if kind == "bool":

        def as_bool(value: Any) -> Any:
            if not isinstance(value, bool):
                raise wrong(value, "true or false")
            return value

        return as_bool
    if kind == "datetime":

        def as_datetime(value: Any) -> Any:
            if not isinstance(value, str):
                raise wrong(value, "an ISO 8601 time")
            try:
                return utc(datetime.fromisoformat(value))
            except ValueError:
                raise wrong(value, "an ISO 8601 time") from None

        return as_datetime

    def as_bytes(value: Any) -> Any:
        if not isinstance(value, str):
            raise wrong(value, "base64 text")
        try:
            return _unb64(value)
        except (binascii.Error, ValueError):
            raise wrong(value, "base64 text") from None

    return as_bytes


class Kind:
    """One record kind: its table, natural key and column codecs."""

    def __init__(self, name: str, table: Table) -> None:
        self.name = name
        self.table = table
        self.mutable = name in MUTABLE_KINDS
        self.keyless = name == "log_record"
        columns = [c for c in table.columns if not (self.keyless and c.key == "id")]
        self.fields = tuple(Field.of(c) for c in columns)
        self.columns = tuple(f.name for f in self.fields)
        self.key_columns = tuple(c.key for c in table.primary_key.columns)
        self._encoders = tuple((f.name, _encoder(f)) for f in self.fields)
        self._decoders = tuple((f, _decoder(f)) for f in self.fields)
        self._names = frozenset(self.columns)

    def __repr__(self) -> str:
        return f"<Kind {self.name}>"

    def encode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-ready ``data`` of a row read from the database."""
        return {name: enc(row[name]) for name, enc in self._encoders}

    def key(self, data: Mapping[str, Any]) -> Any:
        """The natural key of an encoded row: a string, or a list for a composite key."""
        if self.keyless:
            identity = json.dumps([data[c] for c in LOG_IDENTITY], separators=(",", ":"))
            return hashlib.sha1(identity.encode("utf-8")).hexdigest()
        if len(self.key_columns) == 1:
            return data[self.key_columns[0]]
        return [data[c] for c in self.key_columns]

    def decode(self, data: Any) -> dict[str, Any]:
        """A validated row (Python values) from an encoded ``data`` object."""
        if not isinstance(data, dict):
            raise RecordError("'data' must be an object")
        unknown = data.keys() - self._names
        if unknown:
            raise RecordError(
                f"unknown field{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(sorted(map(repr, unknown)))} (is this ledger older than the "
                "one that wrote the file? run `ledgerflow db upgrade`)"
            )
        row: dict[str, Any] = {}
        for field, decode in self._decoders:
            value = data.get(field.name)
            if value is None:
                if field.name not in data and field.has_default:
                    row[field.name] = field.default
                elif field.nullable:
                    row[field.name] = None
                else:
                    raise RecordError(f"field '{field.name}' is required")
                continue
            row[field.name] = decode(value)
        return row


def _build_kinds() -> dict[str, Kind]:
    tables = LedgerBase.metadata.tables
    return {name: Kind(name, tables[table]) for name, table in KIND_TABLES}


KINDS: dict[str, Kind] = _build_kinds()
ORDER: tuple[Kind, ...] = tuple(KINDS.values())


def encode_line(kind: Kind, row: Mapping[str, Any], blob: bytes | None = None) -> str:
    """One line of an export file (with its newline)."""
    data = kind.encode(row)
    record: dict[str, Any] = {"kind": kind.name, "key": kind.key(data), "data": data}
    if blob is not None:
        record["blob"] = _b64(blob)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"


@dataclass
class Record:
    kind: Kind
    row: dict[str, Any]
    blob: bytes | None
    line: int


def decode_line(text: str | bytes, line: int, source: str) -> Record | None:
    """The record of one line (None for a blank line); an ImportRecordsError names the line."""
    try:
        return _decode(text, line)
    except RecordError as exc:
        raise ImportRecordsError(f"{source}, line {line}: {exc}", hint=FIX_HINT) from None


def _decode(text: str | bytes, line: int) -> Record | None:
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise RecordError("a record must be a JSON object")
    missing = [k for k in ("kind", "key", "data") if k not in record]
    if missing:
        raise RecordError(f"missing member {', '.join(map(repr, missing))}")
    extra = record.keys() - {"kind", "key", "data", "blob"}
    if extra:
        raise RecordError(f"unknown member {', '.join(sorted(map(repr, extra)))}")
    name = record["kind"]
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise RecordError(f"unknown kind {json.dumps(name)[:40]} (known: {', '.join(KINDS)})")
    row = kind.decode(record["data"])
    if kind.key(kind.encode(row)) != record["key"]:
        raise RecordError(f"key {json.dumps(record['key'])[:100]} does not match the {name}'s data")
    blob = record.get("blob")
    if blob is not None:
        if name != "value":
            raise RecordError("only a value record may carry a 'blob'")
        if not isinstance(blob, str):
            raise RecordError("'blob' must be base64 text")
        try:
            blob = _unb64(blob)
        except (binascii.Error, ValueError):
            raise RecordError("'blob' is not valid base64") from None
    if name == "value":
        _check_value(row, blob)
    return Record(kind, row, blob, line)


def _check_value(row: dict[str, Any], blob: bytes | None) -> None:
    if row.get("inline") is not None and row.get("store_key") is not None:
        raise RecordError("a value has either 'inline' bytes or a 'store_key', not both")
    if blob is not None and row.get("store_key") is None:
        raise RecordError("a value with a 'blob' needs a 'store_key'")
    size = row.get("size")
    data = row.get("inline") if row.get("inline") is not None else blob
    if size is not None and data is not None and len(data) != size:
        raise RecordError(f"the value's bytes ({len(data)}) do not match its size ({size})")
