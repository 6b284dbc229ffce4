"""The framework's own tables (prefix ``lf_``), in the ``default`` database.

Content-addressed records (``task_def``, ``value``, ``call``, ``argument``, ``value_edge``,
``file``, ``configuration``) are immutable and keyed by their hash, so copying them between
databases is idempotent. ``run``, ``task_run`` and ``log_record`` are keyed by random ids and
describe what happened when.

Hashes are 40 hex characters; run and task-run ids 32.

These are SQLAlchemy Core tables, so a run records without loading the ORM; the mapped
classes of :mod:`ledgerflow.ledger.schema` (what the readers query) are built on them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from ledgerflow.db.naming import NAMING_CONVENTION

HASH = String(40)
ID = String(32)
WHEN = DateTime(timezone=True)

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _required(name: str, type_: Any, *args: Any, **kwargs: Any) -> Column[Any]:
    return Column(name, type_, *args, nullable=False, **kwargs)


def _optional(name: str, type_: Any, *args: Any, **kwargs: Any) -> Column[Any]:
    return Column(name, type_, *args, nullable=True, **kwargs)


#: A redacted configuration, once per distinct content.
configuration = Table(
    "lf_configuration", metadata,
    # hash of the YAML, 40 hex like every hash (rows written by earlier versions: 64-hex SHA-256)
    _required("hash", String(64), primary_key=True),
    _required("yaml", Text),
    _required("created_at", WHEN),
)

#: One execution of a pipeline.
run = Table(
    "lf_run", metadata,
    _required("id", ID, primary_key=True),
    _required("status", String(16)),
    _required("entry_task", String(255)),
    _optional("arguments", Text),  # JSON preview of the entry arguments
    _optional("command_line", Text),
    _required("started_at", WHEN),
    _optional("ended_at", WHEN),
    _optional("heartbeat_at", WHEN),
    _optional("host", String(255)),
    _optional("user", String(255)),
    _optional("pid", Integer),
    _optional("executor", String(32)),
    _optional("config_hash", String(64), ForeignKey("lf_configuration.hash")),
    _optional("code_version", String(64)),  # git commit of the work tree
    _optional("library_version", String(32)),
    _optional("root_call_hash", HASH),
    _optional("result_hash", HASH),
    _optional("writer", String(255)),  # database role (PostgreSQL) or OS user that started it
    Index("ix_lf_run_started_at", "started_at"),
    Index("ix_lf_run_status_started_at", "status", "started_at"),
    Index("ix_lf_run_entry_task", "entry_task"),
)

#: A task's code: hash of its normalised source, version and the helpers it calls.
task_def = Table(
    "lf_task_def", metadata,
    _required("hash", HASH, primary_key=True),
    _required("name", String(255)),
    _required("namespace", String(255), default=""),
    _optional("version", String(64)),
    _optional("module", String(255)),
    _optional("source", Text),
    _optional("helpers", Text),  # JSON {qualified name: code hash}
    _required("created_at", WHEN),
    Index("ix_lf_task_def_name", "namespace", "name"),
)

#: A value by content hash: inline bytes or a pointer into the value store.
value = Table(
    "lf_value", metadata,
    _required("hash", HASH, primary_key=True),
    _required("type_name", String(255)),
    _required("format", String(16)),  # pickle | json | file | none
    _optional("preview", String(255)),
    _optional("size", Integer),
    _optional("inline", LargeBinary),
    _optional("store_key", String(255)),
    _optional("signature", String(64)),
    _required("created_at", WHEN),
    _optional("writer", String(255)),  # database role (PostgreSQL) or OS user that wrote it
)

#: A container value (list, tuple, dict, dataclass) holds a value at a position.
value_edge = Table(
    "lf_value_edge", metadata,
    _required("parent_hash", HASH, ForeignKey("lf_value.hash"), primary_key=True),
    _required("position", String(255), primary_key=True),
    _required("child_hash", HASH, ForeignKey("lf_value.hash")),
    Index("ix_lf_value_edge_child_hash", "child_hash"),
)

#: The arguments of a call, keyed by their combined hash (shared by identical calls).
argument = Table(
    "lf_argument", metadata,
    _required("args_hash", HASH, primary_key=True),
    _required("position", Integer, primary_key=True),  # order in the call
    _optional("key", String(255)),  # keyword name, None if positional
    _required("value_hash", HASH, ForeignKey("lf_value.hash")),
    Index("ix_lf_argument_value_hash", "value_hash"),
)

#: A completed call: task hash + arguments hash + result hash.
call = Table(
    "lf_call", metadata,
    _required("hash", HASH, primary_key=True),
    _required("task_hash", HASH, ForeignKey("lf_task_def.hash")),
    _required("args_hash", HASH),
    _required("value_hash", HASH, ForeignKey("lf_value.hash")),
    _required("created_at", WHEN),
    Index("ix_lf_call_task_args", "task_hash", "args_hash"),
    Index("ix_lf_call_args_hash", "args_hash"),  # calls that used given arguments
    Index("ix_lf_call_value_hash", "value_hash"),
)

#: A call whose task returned further calls (its children), in order.
call_edge = Table(
    "lf_call_edge", metadata,
    _required("parent_hash", HASH, ForeignKey("lf_call.hash"), primary_key=True),
    _required("position", Integer, primary_key=True),
    _required("child_hash", HASH, ForeignKey("lf_call.hash")),
    Index("ix_lf_call_edge_child_hash", "child_hash"),
)

#: One attempt to obtain a call's result within a run (executed or from the cache).
task_run = Table(
    "lf_task_run", metadata,
    _required("id", ID, primary_key=True),
    _required("run_id", ID, ForeignKey("lf_run.id", ondelete="CASCADE")),
    _optional("parent_id", ID),  # task run whose task created this call
    _required("task_hash", HASH, ForeignKey("lf_task_def.hash")),
    _required("task_name", String(255)),
    _required("args_hash", HASH),
    _optional("call_hash", HASH),
    _optional("value_hash", HASH),
    _required("status", String(16)),
    _required("attempt", Integer, default=1),
    _optional("cached_from", ID),  # run that produced a cached result
    _optional("started_at", WHEN),
    _optional("ended_at", WHEN),
    _optional("duration", Float),  # seconds of execution
    _optional("worker", String(255)),
    _optional("exception_type", String(255)),
    _optional("exception_message", Text),
    _optional("traceback", Text),
    Index("ix_lf_task_run_run_status", "run_id", "status"),
    Index("ix_lf_task_run_task_args", "task_hash", "args_hash"),
    Index("ix_lf_task_run_args_hash", "args_hash"),
    Index("ix_lf_task_run_status_started", "status", "started_at"),
    Index("ix_lf_task_run_task_name", "task_name"),
    Index("ix_lf_task_run_call_hash", "call_hash"),
    Index("ix_lf_task_run_parent_id", "parent_id"),
)

#: A line of a task run's log: from ``context.logger``, standard ``logging``, or printed by
#: the task (level ``STDOUT`` or ``STDERR``).
log_record = Table(
    "lf_log_record", metadata,
    _required("id", Integer, primary_key=True, autoincrement=True),
    _required("run_id", ID, ForeignKey("lf_run.id", ondelete="CASCADE")),
    _optional("task_run_id", ID),
    _required("created_at", WHEN),
    _required("level", String(16)),
    _optional("logger", String(255)),
    _required("message", Text),
    Index("ix_lf_log_record_run_id", "run_id"),
    Index("ix_lf_log_record_task_run_id", "task_run_id"),
)

#: A file as seen by a run: path, content hash, size and modification time. ``hash`` is the
#: hash of the ``File`` value (path and content), so it is also its ``lf_value.hash``.
file = Table(
    "lf_file", metadata,
    _required("hash", HASH, primary_key=True),
    _required("path", Text),
    _required("content_hash", String(64)),
    _optional("size", Integer),
    _optional("mtime", Float),
    _required("created_at", WHEN),
    Index("ix_lf_file_path", "path"),
)

#: A key=value label on any record (run, task run, call, value, file).
tag = Table(
    "lf_tag", metadata,
    _required("entity_id", String(64), primary_key=True),
    _required("key", String(255), primary_key=True),
    _required("value", String(255), primary_key=True),
    _required("entity_kind", String(16)),
    _required("created_at", WHEN),
    _optional("writer", String(255)),  # database role (PostgreSQL) that added it
    Index("ix_lf_tag_key_value", "key", "value"),
)

#: A cached result of a task on given arguments (one version per result recorded for the
#: call; the newest valid one is used), shared by every run of the database.
cache_entry = Table(
    "lf_cache_entry", metadata,
    _required("task_hash", HASH, primary_key=True),
    _required("args_hash", HASH, primary_key=True),
    _required("call_hash", HASH),
    _required("value_hash", HASH, ForeignKey("lf_value.hash")),
    _optional("run_id", ID),  # run that produced it
    # each result recorded for a call is a new version; the newest valid one is used
    _required("created_at", WHEN, primary_key=True),
    _optional("writer", String(255)),  # database role (PostgreSQL) or OS user that wrote it
    Index("ix_lf_cache_entry_value_hash", "value_hash"),
)

#: A large value kept in the ledger database itself, in ordered chunks.
value_chunk = Table(
    "lf_value_chunk", metadata,
    _required("key", String(128), primary_key=True),
    _required("seq", Integer, primary_key=True),
    _required("data", LargeBinary),
)

#: A lease on an uncached call: the run computing it, until ``expires_at`` (the database's
#: clock) unless its heartbeat extends it. ``fence`` grows each time the call changes hands;
#: a result is committed only under the current fence.
claim = Table(
    "lf_claim", metadata,
    _required("task_hash", HASH, primary_key=True),
    _required("args_hash", HASH, primary_key=True),
    _required("run_id", ID),
    _required("fence", Integer),
    _required("claimed_at", WHEN),
    _required("expires_at", WHEN),
    _optional("host", String(255)),
    _optional("pid", Integer),
    Index("ix_lf_claim_run_id", "run_id"),
)

#: A row a call wrote through its session (bind, table, primary key as JSON): its cached
#: result stays valid only while the row exists.
written = Table(
    "lf_written", metadata,
    _required("call_hash", HASH, primary_key=True),
    _required("bind", String(64), primary_key=True),
    _required("table_name", String(255), primary_key=True),
    _required("row_key", Text, primary_key=True),
)

LEDGER_TABLES = tuple(metadata.tables)
