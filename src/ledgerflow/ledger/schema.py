"""The ORM classes of the framework's tables, mapped onto :mod:`ledgerflow.ledger.tables`.

The tables (columns, keys, indexes) are defined once, in Core, in ``tables``; what the
readers (``ledgerflow.provenance``) query are these classes. Writing a run uses the tables
directly and never imports the ORM.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import DeclarativeBase, Mapped

from ledgerflow.ledger import tables
from ledgerflow.ledger.tables import LEDGER_TABLES as LEDGER_TABLES


class LedgerBase(DeclarativeBase):
    metadata = tables.metadata


class Configuration(LedgerBase):
    """A redacted configuration, once per distinct content."""

    __table__ = tables.configuration
    hash: Mapped[str]  # hash of the YAML, 40 hex like every hash (rows written by earlier versions hold a 64-hex SHA-256)
    yaml: Mapped[str]
    created_at: Mapped[datetime]


class Run(LedgerBase):
    """One execution of a pipeline."""

    __table__ = tables.run
    id: Mapped[str]
    status: Mapped[str]
    entry_task: Mapped[str]
    arguments: Mapped[str | None]  # JSON preview of the entry arguments
    command_line: Mapped[str | None]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    host: Mapped[str | None]
    user: Mapped[str | None]
    pid: Mapped[int | None]
    executor: Mapped[str | None]
    config_hash: Mapped[str | None]
    code_version: Mapped[str | None]  # git commit of the work tree
    library_version: Mapped[str | None]
    root_call_hash: Mapped[str | None]
    result_hash: Mapped[str | None]
    writer: Mapped[str | None]  # role (PostgreSQL, set by the server) or OS user (SQLite) that wrote it


class TaskDef(LedgerBase):
    """A task's code: hash of its normalised source, version and the helpers it calls."""

    __table__ = tables.task_def
    hash: Mapped[str]
    name: Mapped[str]
    namespace: Mapped[str]
    version: Mapped[str | None]
    module: Mapped[str | None]
    source: Mapped[str | None]
    helpers: Mapped[str | None]  # JSON {qualified name: code hash}
    created_at: Mapped[datetime]


class Value(LedgerBase):
    """A value by content hash: inline bytes or a pointer into the value store."""

    __table__ = tables.value
    hash: Mapped[str]
    type_name: Mapped[str]
    format: Mapped[str]  # pickle | json | file | none
    preview: Mapped[str | None]
    size: Mapped[int | None]
    inline: Mapped[bytes | None]
    store_key: Mapped[str | None]
    signature: Mapped[str | None]  # hash_bytes of the stored bytes (earlier versions: a 64-hex HMAC)
    created_at: Mapped[datetime]
    writer: Mapped[str | None]  # role (PostgreSQL, set by the server) or OS user (SQLite) that wrote it


class ValueEdge(LedgerBase):
    """A container value (list, tuple, dict, dataclass) holds a value at a position."""

    __table__ = tables.value_edge
    parent_hash: Mapped[str]
    position: Mapped[str]
    child_hash: Mapped[str]


class Argument(LedgerBase):
    """The arguments of a call, keyed by their combined hash (shared by identical calls)."""

    __table__ = tables.argument
    args_hash: Mapped[str]
    position: Mapped[int]  # order in the call
    key: Mapped[str | None]  # keyword name, None if positional
    value_hash: Mapped[str]


class CallRow(LedgerBase):
    """A completed call: task hash + arguments hash + result hash."""

    __table__ = tables.call
    hash: Mapped[str]
    task_hash: Mapped[str]
    args_hash: Mapped[str]
    value_hash: Mapped[str]
    created_at: Mapped[datetime]


class CallEdge(LedgerBase):
    """A call whose task returned further calls (its children), in order."""

    __table__ = tables.call_edge
    parent_hash: Mapped[str]
    position: Mapped[int]
    child_hash: Mapped[str]


class TaskRun(LedgerBase):
    """One attempt to obtain a call's result within a run (executed or from the cache)."""

    __table__ = tables.task_run
    id: Mapped[str]
    run_id: Mapped[str]
    parent_id: Mapped[str | None]  # task run whose task created this call
    task_hash: Mapped[str]
    task_name: Mapped[str]
    args_hash: Mapped[str]
    call_hash: Mapped[str | None]
    value_hash: Mapped[str | None]
    status: Mapped[str]
    attempt: Mapped[int]
    cached_from: Mapped[str | None]  # run that produced a cached result
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration: Mapped[float | None]  # seconds of execution
    worker: Mapped[str | None]
    exception_type: Mapped[str | None]
    exception_message: Mapped[str | None]
    traceback: Mapped[str | None]


class LogRecord(LedgerBase):
    """A line of a task run's log: from ``context.logger``, standard ``logging``, or printed
    by the task (level ``STDOUT`` or ``STDERR``)."""

    __table__ = tables.log_record
    id: Mapped[int]
    run_id: Mapped[str]
    task_run_id: Mapped[str | None]
    created_at: Mapped[datetime]
    level: Mapped[str]
    logger: Mapped[str | None]
    message: Mapped[str]


class FileRow(LedgerBase):
    """A file as seen by a run: path, content hash, size and modification time.

    ``hash`` is the hash of the ``File`` value (path and content), so it is also its
    ``lf_value.hash``.
    """

    __table__ = tables.file
    hash: Mapped[str]
    path: Mapped[str]
    content_hash: Mapped[str]
    size: Mapped[int | None]
    mtime: Mapped[float | None]
    created_at: Mapped[datetime]


class Tag(LedgerBase):
    """A key=value label on any record (run, task run, call, value, file)."""

    __table__ = tables.tag
    entity_id: Mapped[str]
    key: Mapped[str]
    value: Mapped[str]
    entity_kind: Mapped[str]
    created_at: Mapped[datetime]
    writer: Mapped[str | None]  # database role (PostgreSQL) that added it


class CacheEntry(LedgerBase):
    """A cached result of a task on given arguments, shared by every run of the database.
    Each result recorded for a call adds a version (a rerun, a call computed again because
    its entry could not be used); a lookup uses the newest version that passes its checks,
    and the earlier ones stay as history."""

    __table__ = tables.cache_entry
    task_hash: Mapped[str]
    args_hash: Mapped[str]
    call_hash: Mapped[str]
    value_hash: Mapped[str]
    run_id: Mapped[str | None]  # run that produced it
    created_at: Mapped[datetime]
    writer: Mapped[str | None]  # role (PostgreSQL, set by the server) or OS user (SQLite) that wrote it



class ValueChunk(LedgerBase):
    """A piece of a large value kept in the ledger database itself; ``seq`` orders them."""

    __table__ = tables.value_chunk
    key: Mapped[str]
    seq: Mapped[int]
    data: Mapped[bytes]


class Claim(LedgerBase):
    """A lease on an uncached call: the run computing it, until ``expires_at`` (the
    database's clock) unless its heartbeat extends it. ``fence`` grows each time the call
    changes hands; a result is committed only under the current fence."""

    __table__ = tables.claim
    task_hash: Mapped[str]
    args_hash: Mapped[str]
    run_id: Mapped[str]
    fence: Mapped[int]
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    host: Mapped[str | None]
    pid: Mapped[int | None]


class Written(LedgerBase):
    """A row a call wrote through its session (bind, table, primary key as JSON): the
    call's cached result stays valid only while the rows one run recorded for it all exist
    (see docs/sharing.md). A row with a task's hash as ``call_hash`` and an empty bind and
    table marks a task some of whose calls wrote rows."""

    __table__ = tables.written
    call_hash: Mapped[str]  # the call (`lf_call.hash`); a task (`lf_task_def.hash`) in its mark
    bind: Mapped[str]  # the database holding the table, as named in ledgerflow.yml
    table_name: Mapped[str]  # the table (`schema.table` when it has a schema)
    row_key: Mapped[str]  # JSON `{"key": {column: value}, "run": run id}`; `"key": null`: the table must hold rows

