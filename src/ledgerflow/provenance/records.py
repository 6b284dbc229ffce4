"""What the ledger API returns: plain frozen dataclasses, detached from any session.

Every record has ``to_json()`` giving a dict with a stable, documented shape (see
``docs/provenance.md``): keys never disappear, datetimes are ISO 8601 strings in UTC,
and a field that the call did not load is ``null`` rather than missing. In particular,
listings leave the relations that cost an extra query per record as ``None``
(``TaskRunInfo.logs``, ``CallInfo.parents/children/task_runs``,
``ValueInfo.produced_by/used_by``, ``FileInfo.task_runs``); :meth:`Ledger.get` fills them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ledgerflow.db.times import utc

Kind = Literal["run", "task_run", "call", "value", "file"]

#: Every kind of record ``Ledger.get`` may return, in the order ambiguities are listed.
KINDS: tuple[Kind, ...] = ("run", "task_run", "call", "value", "file")





def duration_between(started: datetime | None, ended: datetime | None) -> float | None:
    """Seconds from ``started`` to ``ended`` (naive times are UTC), None unless both are set."""
    if started is None or ended is None:
        return None
    return round((utc(ended) - utc(started)).total_seconds(), 6)


def entry_arguments(text: str | None) -> dict[str, Any] | None:
    """A run's entry arguments, stored as a JSON object of previews."""
    if text is None:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return {"(unreadable)": text}
    return found if isinstance(found, dict) else {"(unreadable)": text}


def _plain(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {str(key): _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(item) for item in obj]
    return obj


class _Record:
    """Shared ``to_json`` for the records below."""

    kind: str = ""

    def to_json(self) -> dict[str, Any]:
        data = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        if self.kind:
            data["kind"] = self.kind
        return data


@dataclass(frozen=True)
class TagInfo(_Record):
    """A ``key=value`` label on a record."""

    key: str
    value: str
    entity_id: str
    entity_kind: str
    created_at: datetime | None = None

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True)
class ValueInfo(_Record):
    """A content-addressed value: its type and short preview (never the bytes)."""

    kind = "value"

    hash: str
    type_name: str
    format: str
    preview: str | None
    size: int | None
    created_at: datetime | None
    path: str | None = None  # set when the value is a File
    tags: tuple[TagInfo, ...] = ()
    produced_by: tuple[str, ...] | None = None  # call hashes whose result it is
    used_by: tuple[str, ...] | None = None  # call hashes that took it as an argument

    @property
    def short(self) -> str:
        return self.hash[:8]

    def display(self) -> str:
        return self.preview if self.preview is not None else f"<{self.type_name}>"


@dataclass(frozen=True)
class ArgumentInfo(_Record):
    """One argument of a call: its position, keyword (if passed by name) and value."""

    position: int
    key: str | None
    name: str  # keyword, else the parameter's name from the task's source, else argN
    value: ValueInfo

    def display(self) -> str:
        return f"{self.name}={self.value.display()}"


@dataclass(frozen=True)
class LogLine(_Record):
    """A line of a task run's log: from ``context.logger``, standard ``logging``, or printed
    by the task (level ``STDOUT`` or ``STDERR``)."""

    id: int
    run_id: str
    task_run_id: str | None
    created_at: datetime | None
    level: str
    logger: str | None
    message: str

    def __str__(self) -> str:
        stamp = self.created_at.strftime("%H:%M:%S") if self.created_at else "--:--:--"
        return f"{stamp} {self.level:<7} {self.message}"


@dataclass(frozen=True)
class RunInfo(_Record):
    """One run of a pipeline, with how many of its task runs ended in each state."""

    kind = "run"

    id: str
    status: str
    entry_task: str
    arguments: dict[str, Any] | None  # the entry task's arguments (previews), by name
    command_line: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration: float | None  # seconds; None while running
    heartbeat_at: datetime | None
    host: str | None
    user: str | None
    pid: int | None
    executor: str | None
    config_hash: str | None
    code_version: str | None
    library_version: str | None
    root_call_hash: str | None
    result_hash: str | None
    counts: dict[str, int]  # task runs by status (only statuses that occur)
    tags: tuple[TagInfo, ...] = ()

    @property
    def short(self) -> str:
        return self.id[:8]

    @property
    def task_runs_total(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def from_row(cls, row: Any, counts: dict[str, int], tags: tuple[TagInfo, ...]) -> RunInfo:
        """The record of an ``lf_run`` row (a Core row, an ORM object or anything with its
        columns as attributes, times as datetimes), its task-run counts and its tags."""
        return cls(
            id=row.id,
            status=row.status,
            entry_task=row.entry_task,
            arguments=entry_arguments(row.arguments),
            command_line=row.command_line,
            started_at=utc(row.started_at),
            ended_at=utc(row.ended_at),
            duration=duration_between(row.started_at, row.ended_at),
            heartbeat_at=utc(row.heartbeat_at),
            host=row.host,
            user=row.user,
            pid=row.pid,
            executor=row.executor,
            config_hash=row.config_hash,
            code_version=row.code_version,
            library_version=row.library_version,
            root_call_hash=row.root_call_hash,
            result_hash=row.result_hash,
            counts=dict(sorted(counts.items())),
            tags=tags,
        )


@dataclass(frozen=True)
class TaskRunInfo(_Record):
    """One attempt to obtain a call's result within a run (executed or cached)."""

    kind = "task_run"

    id: str
    run_id: str
    parent_id: str | None
    task_name: str
    task_hash: str
    args_hash: str
    call_hash: str | None
    value_hash: str | None
    status: str
    attempt: int
    cached_from: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration: float | None
    worker: str | None
    exception_type: str | None
    exception_message: str | None
    traceback: str | None
    arguments: tuple[ArgumentInfo, ...] = ()
    result: ValueInfo | None = None
    tags: tuple[TagInfo, ...] = ()
    logs: tuple[LogLine, ...] | None = None

    @property
    def short(self) -> str:
        return self.id[:8]

    def call_display(self) -> str:
        """``task(a=1, b='x')`` with value previews."""
        return f"{self.task_name}({', '.join(a.display() for a in self.arguments)})"


@dataclass(frozen=True)
class CallInfo(_Record):
    """A completed call: task + arguments + result, shared by every run that made it."""

    kind = "call"

    hash: str
    task_name: str
    task_hash: str
    args_hash: str
    value_hash: str
    created_at: datetime | None
    arguments: tuple[ArgumentInfo, ...] = ()
    result: ValueInfo | None = None
    tags: tuple[TagInfo, ...] = ()
    parents: tuple[str, ...] | None = None
    children: tuple[str, ...] | None = None
    task_runs: tuple[TaskRunInfo, ...] | None = None

    @property
    def short(self) -> str:
        return self.hash[:8]

    def call_display(self) -> str:
        return f"{self.task_name}({', '.join(a.display() for a in self.arguments)})"


@dataclass(frozen=True)
class FileInfo(_Record):
    """A file as a run saw it; ``hash`` is also the hash of its ``File`` value."""

    kind = "file"

    hash: str
    path: str
    content_hash: str
    size: int | None
    mtime: float | None
    created_at: datetime | None
    value: ValueInfo | None = None
    tags: tuple[TagInfo, ...] = ()
    task_runs: tuple[TaskRunInfo, ...] | None = None  # task runs that returned this file

    @property
    def short(self) -> str:
        return self.hash[:8]


Record = RunInfo | TaskRunInfo | CallInfo | ValueInfo | FileInfo


@dataclass(frozen=True)
class Candidate(_Record):
    """One of several records an ambiguous id prefix matches."""

    record_kind: str
    id: str
    description: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.record_kind, "id": self.id, "description": self.description}

    def __str__(self) -> str:
        return f"{self.record_kind} {self.id[:12]}  {self.description}"
