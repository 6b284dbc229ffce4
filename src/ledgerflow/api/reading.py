"""Reading the ledger: what ``runs``, ``log``, ``show``, ``query``, ``tag`` and ``dataflow``
(and the dashboard's pages) call.

Each function takes the project's :class:`~ledgerflow.config.Settings` (the ledger is opened
and closed around the call) or a :class:`~ledgerflow.provenance.ledger.Ledger` already open
(a long-lived process such as the dashboard keeps one), and returns records whose
``to_json()`` is the documented shape of the command's ``--json`` (docs/provenance.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledgerflow.ledger.status import RUN_STATUSES, TASK_RUN_STATUSES
from ledgerflow.provenance.log import GROUP_AT as LOG_GROUP_AT
from ledgerflow.provenance.log import LogEntry, LogGroup, RunLog
from ledgerflow.provenance.records import (
    CallInfo,
    Candidate,
    FileInfo,
    LogLine,
    Record,
    RunInfo,
    TagInfo,
    TaskRunInfo,
    ValueInfo,
)

if TYPE_CHECKING:
    from pathlib import Path

    from ledgerflow.config.settings import Settings
    from ledgerflow.provenance.dataflow import Dataflow
    from ledgerflow.provenance.ledger import Ledger
    from ledgerflow.provenance.query import TagFilter, TimeLike

__all__ = [
    "LOG_GROUP_AT",
    "PICTURE_FORMATS",
    "RUN_STATUSES",
    "TASK_RUN_STATUSES",
    "CallInfo",
    "Candidate",
    "FileInfo",
    "LogEntry",
    "LogGroup",
    "LogLine",
    "Record",
    "RunInfo",
    "RunLog",
    "TagChange",
    "TagInfo",
    "TaskRunInfo",
    "ValueInfo",
    "dataflow",
    "ledger",
    "log",
    "logs",
    "picture",
    "query",
    "resolve",
    "run_info",
    "runs",
    "show",
    "tag",
    "untag",
]

#: Rows a listing returns unless told otherwise (``runs``, ``query``).
PAGE = 20


@contextmanager
def ledger(source: Settings | Ledger | str | Path | None = None) -> Iterator[Ledger]:
    """The project's ledger, open for the ``with`` block (an open ``Ledger`` is used as is).

    Opening checks the schema against the library and marks runs whose process died
    ``interrupted`` (skipped, without error, on a ledger this process may not write).
    """
    from ledgerflow.provenance.ledger import Ledger

    if isinstance(source, Ledger):
        yield source
        return
    with Ledger.open(source) as opened:
        yield opened


def runs(
    source: Settings | Ledger,
    *,
    status: str | Iterable[str] | None = None,
    task: str | None = None,
    tag: TagFilter | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    limit: int | None = PAGE,
    offset: int = 0,
) -> list[RunInfo]:
    """Runs, newest first, with their task runs counted by status (``ledgerflow runs``)."""
    from ledgerflow.config.settings import Settings

    if isinstance(source, Settings):  # without building a Ledger: no ORM to load
        from ledgerflow.provenance.fastlist import list_runs

        found = list_runs(source, status=status, task=task, tag=tag, since=since, until=until,
                          limit=limit, offset=offset)
        if found is not None:  # over the driver alone: no SQLAlchemy to load
            return found
        from ledgerflow.provenance.reader import list_project_runs

        return list_project_runs(source, status=status, task=task, tag=tag, since=since,
                                 until=until, limit=limit, offset=offset)
    with ledger(source) as book:
        return book.runs(status=status, task=task, tag=tag, since=since, until=until,
                         limit=limit, offset=offset)


def run_info(source: Settings | Ledger, run: str | None = None) -> RunInfo | None:
    """One run by id or prefix; without one, the latest run (None when nothing ran yet)."""
    with ledger(source) as book:
        return book.run(run) if run else book.latest_run()


def log(
    source: Settings | Ledger,
    run: str | None = None,
    *,
    depth: int | None = None,
    limit: int | None = None,
    expand: bool = False,
) -> RunLog | None:
    """A run's task runs as a tree (``ledgerflow log``): siblings of one task grouped unless
    ``expand``; ``depth`` levels and ``limit`` task-run lines at most. None: no run yet."""
    with ledger(source) as book:
        return book.log(run, depth=depth, limit=limit, expand=expand)


def show(source: Settings | Ledger, target: str) -> Record:
    """The run, task run, call, value or file an id, prefix or path names, with its
    relations (``ledgerflow show``)."""
    with ledger(source) as book:
        return book.show(target)


def query(
    source: Settings | Ledger,
    *,
    run: str | Iterable[str] | None = None,
    task: str | None = None,
    status: str | Iterable[str] | None = None,
    tag: TagFilter | None = None,
    file: str | Path | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    limit: int | None = PAGE,
    offset: int = 0,
) -> list[TaskRunInfo]:
    """Task runs matching every filter, newest first (``ledgerflow query``)."""
    with ledger(source) as book:
        return book.query(run=run, task=task, status=status, tag=tag, file=file, since=since,
                          until=until, limit=limit, offset=offset)


def logs(source: Settings | Ledger, target: str) -> list[LogLine]:
    """The log lines of a run or of one task run, oldest first."""
    with ledger(source) as book:
        return book.logs(target)


def resolve(source: Settings | Ledger, target: str) -> Candidate:
    """Which record (kind and full id) an id, prefix or path names."""
    with ledger(source) as book:
        return book.resolve(target)


def dataflow(
    source: Settings | Ledger, target: str, *, downstream: bool = False, max_nodes: int = 1000
) -> Dataflow:
    """How a value or file was derived, or what came of it (``ledgerflow dataflow``)."""
    with ledger(source) as book:
        return book.dataflow(target, downstream=downstream, max_nodes=max_nodes)


#: What :func:`picture` draws: Graphviz DOT and Mermaid flowcharts.
PICTURE_FORMATS = ("dot", "mermaid")


def picture(found: Dataflow | RunLog, fmt: str) -> str:
    """A dataflow (``ledgerflow dataflow --format``) or a run's task-run tree (``ledgerflow log
    --format``) as Graphviz DOT (``fmt="dot"``) or a Mermaid flowchart (``fmt="mermaid"``)."""
    from ledgerflow.errors import UsageError
    from ledgerflow.provenance import pictures

    if fmt not in PICTURE_FORMATS:
        raise UsageError(f"unknown picture format {fmt!r}: choose one of {', '.join(PICTURE_FORMATS)}")
    drawn = pictures.log_picture(found) if isinstance(found, RunLog) else pictures.dataflow_picture(found)
    return pictures.render(drawn, fmt)


@dataclass(frozen=True)
class TagChange:
    """A record's tags after ``tag``/``untag``."""

    kind: str  # run, task_run, call, value or file
    id: str
    tags: tuple[TagInfo, ...]
    removed: int | None = None  # how many tags ``untag`` removed (None for ``tag``)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "tags": [t.to_json() for t in self.tags],
                "removed": self.removed}


def _pairs(pairs: Iterable[str | tuple[str, str]], *, need_value: bool) -> list[tuple[str, str | None]]:
    from ledgerflow.ledger.tags import parse_tags

    return parse_tags(list(pairs), option="tag", need_value=need_value)


def tag(source: Settings | Ledger, target: str, pairs: Iterable[str | tuple[str, str]]) -> TagChange:
    """Add ``KEY=VALUE`` tags (strings or pairs) to the record ``target`` names."""
    parsed = _pairs(pairs, need_value=True)
    with ledger(source) as book:
        found = book.resolve(target)
        book.tag(found.id, {k: v for k, v in parsed if v is not None})
        return TagChange(found.record_kind, found.id, tuple(book.tags(found.id)))


def untag(
    source: Settings | Ledger, target: str, pairs: Iterable[str | tuple[str, str]]
) -> TagChange:
    """Remove tags: ``KEY`` removes every value of KEY, ``KEY=VALUE`` that pair only."""
    parsed = _pairs(pairs, need_value=False)
    with ledger(source) as book:
        found = book.resolve(target)
        keys = [k for k, v in parsed if v is None]
        removed = book.untag(found.id, *keys, **{k: v for k, v in parsed if v is not None})
        return TagChange(found.record_kind, found.id, tuple(book.tags(found.id)), removed)
