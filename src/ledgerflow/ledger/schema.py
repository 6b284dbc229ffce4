"""The framework's own tables (prefix ``lf_``), in the ``default`` database.

Content-addressed records (``task_def``, ``value``, ``call``, ``argument``, ``value_edge``,
``file``, ``configuration``) are immutable and keyed by their hash, so copying them between
databases is idempotent. ``run``, ``task_run`` and ``log_record`` are keyed by random ids and
describe what happened when.

Hashes are 40 hex characters; run and task-run ids 32.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ledgerflow.db.model import NAMING_CONVENTION

HASH = String(40)
ID = String(32)


class LedgerBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}


class Configuration(LedgerBase):
    """A redacted configuration, once per distinct content."""

    __tablename__ = "lf_configuration"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # hash of the YAML, 40 hex like every hash (rows written by earlier versions hold a 64-hex SHA-256)
    yaml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Run(LedgerBase):
    """One execution of a pipeline."""

    __tablename__ = "lf_run"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    entry_task: Mapped[str] = mapped_column(String(255))
    arguments: Mapped[str | None] = mapped_column(Text)  # JSON preview of the entry arguments
    command_line: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    host: Mapped[str | None] = mapped_column(String(255))
    user: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    executor: Mapped[str | None] = mapped_column(String(32))
    config_hash: Mapped[str | None] = mapped_column(ForeignKey("lf_configuration.hash"))
    code_version: Mapped[str | None] = mapped_column(String(64))  # git commit of the work tree
    library_version: Mapped[str | None] = mapped_column(String(32))
    root_call_hash: Mapped[str | None] = mapped_column(HASH)
    result_hash: Mapped[str | None] = mapped_column(HASH)
    __table_args__ = (
        Index("ix_lf_run_started_at", "started_at"),
        Index("ix_lf_run_status_started_at", "status", "started_at"),
        Index("ix_lf_run_entry_task", "entry_task"),
    )


class TaskDef(LedgerBase):
    """A task's code: hash of its normalised source, version and the helpers it calls."""

    __tablename__ = "lf_task_def"
    hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[str | None] = mapped_column(String(64))
    module: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(Text)
    helpers: Mapped[str | None] = mapped_column(Text)  # JSON {qualified name: code hash}
    created_at: Mapped[datetime]
    __table_args__ = (Index("ix_lf_task_def_name", "namespace", "name"),)


class Value(LedgerBase):
    """A value by content hash: inline bytes or a pointer into the value store."""

    __tablename__ = "lf_value"
    hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    type_name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))  # pickle | json | file | none
    preview: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(Integer)
    inline: Mapped[bytes | None] = mapped_column(LargeBinary)
    store_key: Mapped[str | None] = mapped_column(String(255))
    signature: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class ValueEdge(LedgerBase):
    """A container value (list, tuple, dict, dataclass) holds a value at a position."""

    __tablename__ = "lf_value_edge"
    parent_hash: Mapped[str] = mapped_column(ForeignKey("lf_value.hash"), primary_key=True)
    position: Mapped[str] = mapped_column(String(255), primary_key=True)
    child_hash: Mapped[str] = mapped_column(ForeignKey("lf_value.hash"))
    __table_args__ = (Index("ix_lf_value_edge_child_hash", "child_hash"),)


class Argument(LedgerBase):
    """The arguments of a call, keyed by their combined hash (shared by identical calls)."""

    __tablename__ = "lf_argument"
    args_hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # order in the call
    key: Mapped[str | None] = mapped_column(String(255))  # keyword name, None if positional
    value_hash: Mapped[str] = mapped_column(ForeignKey("lf_value.hash"))
    __table_args__ = (Index("ix_lf_argument_value_hash", "value_hash"),)


class CallRow(LedgerBase):
    """A completed call: task hash + arguments hash + result hash."""

    __tablename__ = "lf_call"
    hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    task_hash: Mapped[str] = mapped_column(ForeignKey("lf_task_def.hash"))
    args_hash: Mapped[str] = mapped_column(HASH)
    value_hash: Mapped[str] = mapped_column(ForeignKey("lf_value.hash"))
    created_at: Mapped[datetime]
    __table_args__ = (
        Index("ix_lf_call_task_args", "task_hash", "args_hash"),
        Index("ix_lf_call_args_hash", "args_hash"),  # calls that used given arguments
        Index("ix_lf_call_value_hash", "value_hash"),
    )


class CallEdge(LedgerBase):
    """A call whose task returned further calls (its children), in order."""

    __tablename__ = "lf_call_edge"
    parent_hash: Mapped[str] = mapped_column(ForeignKey("lf_call.hash"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_hash: Mapped[str] = mapped_column(ForeignKey("lf_call.hash"))
    __table_args__ = (Index("ix_lf_call_edge_child_hash", "child_hash"),)


class TaskRun(LedgerBase):
    """One attempt to obtain a call's result within a run (executed or from the cache)."""

    __tablename__ = "lf_task_run"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("lf_run.id", ondelete="CASCADE"))
    parent_id: Mapped[str | None] = mapped_column(ID)  # task run whose task created this call
    task_hash: Mapped[str] = mapped_column(ForeignKey("lf_task_def.hash"))
    task_name: Mapped[str] = mapped_column(String(255))
    args_hash: Mapped[str] = mapped_column(HASH)
    call_hash: Mapped[str | None] = mapped_column(HASH)
    value_hash: Mapped[str | None] = mapped_column(HASH)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    cached_from: Mapped[str | None] = mapped_column(ID)  # run that produced a cached result
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration: Mapped[float | None] = mapped_column(Float)  # seconds of execution
    worker: Mapped[str | None] = mapped_column(String(255))
    exception_type: Mapped[str | None] = mapped_column(String(255))
    exception_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        Index("ix_lf_task_run_run_status", "run_id", "status"),
        Index("ix_lf_task_run_task_args", "task_hash", "args_hash"),
        Index("ix_lf_task_run_args_hash", "args_hash"),
        Index("ix_lf_task_run_status_started", "status", "started_at"),
        Index("ix_lf_task_run_task_name", "task_name"),
        Index("ix_lf_task_run_call_hash", "call_hash"),
        Index("ix_lf_task_run_parent_id", "parent_id"),
    )


class LogRecord(LedgerBase):
    """A line of a task run's log: from ``context.logger``, standard ``logging``, or printed
    by the task (level ``STDOUT`` or ``STDERR``)."""

    __tablename__ = "lf_log_record"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("lf_run.id", ondelete="CASCADE"))
    task_run_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(16))
    logger: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    __table_args__ = (
        Index("ix_lf_log_record_run_id", "run_id"),
        Index("ix_lf_log_record_task_run_id", "task_run_id"),
    )


class FileRow(LedgerBase):
    """A file as seen by a run: path, content hash, size and modification time.

    ``hash`` is the hash of the ``File`` value (path and content), so it is also its
    ``lf_value.hash``.
    """

    __tablename__ = "lf_file"
    hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(Integer)
    mtime: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]
    __table_args__ = (Index("ix_lf_file_path", "path"),)


class Tag(LedgerBase):
    """A key=value label on any record (run, task run, call, value, file)."""

    __tablename__ = "lf_tag"
    entity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    entity_kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    __table_args__ = (Index("ix_lf_tag_key_value", "key", "value"),)


class CacheEntry(LedgerBase):
    """The cached result of a task on given arguments, shared by every run of the database."""

    __tablename__ = "lf_cache_entry"
    task_hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    args_hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    call_hash: Mapped[str] = mapped_column(HASH)
    value_hash: Mapped[str] = mapped_column(ForeignKey("lf_value.hash"))
    run_id: Mapped[str | None] = mapped_column(ID)  # run that produced it
    created_at: Mapped[datetime]
    __table_args__ = (Index("ix_lf_cache_entry_value_hash", "value_hash"),)


LEDGER_TABLES = tuple(LedgerBase.metadata.tables)
