"""``Ledger``: the Python API for reading (and tagging) what runs recorded.

::

    from ledgerflow import Ledger

    with Ledger.open() as ledger:              # ledgerflow.yml found upwards from here
        for run in ledger.runs(status="failed", since="2d"):
            print(run.short, run.entry_task, run.counts)
        tr = ledger.show("3fa2")               # run, task run, call, value or file
        print(ledger.dataflow("out/sample4.vcf").text())

Reads go through read-only engines (on SQLite they never take the write lock, so reading
while a pipeline runs is safe); only :meth:`Ledger.tag` and :meth:`Ledger.untag` write.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from ledgerflow.config import Settings, load_settings
from ledgerflow.db import Database
from ledgerflow.db.helpers import upsert
from ledgerflow.errors import DatabaseError, NotFoundError, PrivilegeError, UsageError
from ledgerflow.ledger import tags as tag_rules
from ledgerflow.ledger.schema import (
    Argument,
    CallEdge,
    CallRow,
    FileRow,
    Run,
    Tag,
    TaskDef,
    TaskRun,
    Value,
)
from ledgerflow.provenance import _load, ids
from ledgerflow.provenance import dataflow as _dataflow
from ledgerflow.provenance.dataflow import MAX_NODES, Dataflow
from ledgerflow.provenance.log import RunLog, run_log
from ledgerflow.provenance.query import (
    TagFilter,
    TimeLike,
    file_condition,
    glob_to_like,
    parse_tags,
    parse_time,
    tagged,
    task_condition,
    task_runs_statement,
)
from ledgerflow.provenance.reader import (
    check_page,
    list_runs,
    open_reader,
    read_only_failure,
    reap_stale_runs,
)
from ledgerflow.provenance.records import (
    Candidate,
    FileInfo,
    LogLine,
    Record,
    RunInfo,
    TagInfo,
    TaskRunInfo,
    ValueInfo,
)

#: How many related records ``get`` lists (task runs of a call, users of a value, ...).
RELATED_LIMIT = 20


@dataclass(frozen=True)
class TaskRunNode:
    """A task run and the task runs its task created (by ``parent_id``)."""

    task_run: TaskRunInfo
    children: tuple[TaskRunNode, ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.task_run.to_json(), "children": [c.to_json() for c in self.children]}

    def walk(self, depth: int = 0) -> Iterator[tuple[int, TaskRunInfo]]:
        yield depth, self.task_run
        for child in self.children:
            yield from child.walk(depth + 1)


class Ledger:
    """Read access to one project's ledger (its ``default`` database)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self._writer: Database | None = None
        #: Runs found dead (stale heartbeat) and marked interrupted when the ledger opened.
        self.reaped: list[str] = []

    @classmethod
    def open(
        cls,
        config: Settings | str | Path | None = None,
        *,
        check_schema: bool = True,
        reap_stale: bool = True,
    ) -> Ledger:
        """Open the ledger of ``config`` (settings, a ledgerflow.yml path, or found upwards).

        Refuses a ledger whose schema does not match the library (unless ``auto_migrate``),
        and marks runs whose process died ``interrupted``.
        """
        settings = config if isinstance(config, Settings) else load_settings(config)
        ledger = cls(settings, open_reader(settings, check_schema=check_schema))
        if reap_stale:
            ledger.reaped = ledger._reap_stale_runs()
        return ledger

    def _reap_stale_runs(self) -> list[str]:
        """Mark dead runs ``interrupted`` (left as they are on a read-only ledger)."""
        if self._writer is None:
            self._writer = Database(self.settings)
        return reap_stale_runs(self.database, self._writer)

    def close(self) -> None:
        self.database.dispose()
        if self._writer is not None:
            self._writer.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> Path:
        return self.settings.root

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self.database.session()
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        from sqlalchemy.exc import DBAPIError

        if self._writer is None:
            self._writer = Database(self.settings)
        try:
            with self._writer.transaction() as session:
                yield session
        except (DBAPIError, DatabaseError) as exc:
            if not read_only_failure(exc):
                raise
            db = self.settings.databases["default"]
            raise DatabaseError(
                f"the ledger ({db.describe()}) may only be read here: "
                f"{str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0]}",
                hint="tagging writes to the ledger, so it needs write access: on SQLite to the "
                "file and its directory",
            ) from None

    # -- runs ----------------------------------------------------------------------------

    def runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        task: str | None = None,
        tag: TagFilter | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[RunInfo]:
        """Runs, newest first, with their task runs counted by status."""
        with self._session() as session:
            return list_runs(session, status=status, task=task, tag=tag, since=since,
                             until=until, limit=limit, offset=offset)

    def run(self, id_or_prefix: str) -> RunInfo:
        """One run by id or prefix."""
        with self._session() as session:
            found = ids.resolve(session, id_or_prefix, self.root, kinds=("run",))
            return _load.runs(session, [session.get_one(Run, found.id)])[0]

    def latest_run(self) -> RunInfo | None:
        found = self.runs(limit=1)
        return found[0] if found else None

    # -- task runs, values, files ----------------------------------------------------------

    def query(
        self,
        *,
        run: str | Iterable[str] | None = None,
        task: str | None = None,
        status: str | Iterable[str] | None = None,
        tag: TagFilter | None = None,
        file: str | Path | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[TaskRunInfo]:
        """Task runs matching every filter, newest first.

        ``run``: run ids or prefixes; ``tag``: on the task run, its run or its call;
        ``file``: a glob of files the task run returned or took as arguments.
        """
        limit, offset = check_page(limit, offset)
        with self._session() as session:
            run_ids = None
            if run is not None:
                wanted = [run] if isinstance(run, str) else list(run)
                run_ids = [ids.resolve(session, r, self.root, kinds=("run",)).id for r in wanted]
            stmt = task_runs_statement(
                root=self.root, run_ids=run_ids, task=task, status=status, tag=tag,
                file=file, since=since, until=until,
            )
            rows = session.scalars(stmt.limit(limit).offset(offset)).all()
            return _load.task_runs(session, rows)

    def log(
        self,
        run: str | None = None,
        *,
        depth: int | None = None,
        limit: int | None = None,
        expand: bool = False,
    ) -> RunLog | None:
        """A run's task runs as a tree by ``parent_id`` (default: the latest run; None when
        there is no run yet), siblings of one task grouped unless ``expand``; ``depth`` levels
        at most, ``limit`` task runs on their own line at most."""
        if depth is not None and depth < 0:
            raise UsageError(f"--depth must be zero or more, got {depth!r}")
        limit, _ = check_page(limit, 0)
        info = self.run(run) if run else self.latest_run()
        if info is None:
            return None
        with self._session() as session:
            return run_log(session, info, depth=depth, limit=limit, expand=expand)

    def tree(self, run: str) -> list[TaskRunNode]:
        """Deprecated: every task run of a run nested by ``parent_id``; use :meth:`log`."""
        _deprecated("Ledger.tree()", "Ledger.log(run, expand=True)")
        with self._session() as session:
            run_id = ids.resolve(session, run, self.root, kinds=("run",)).id
            stmt = (
                select(TaskRun)
                .where(TaskRun.run_id == run_id)
                .order_by(TaskRun.started_at.asc().nulls_last(), TaskRun.id)
            )
            infos = _load.task_runs(session, session.scalars(stmt).all())
        children: dict[str | None, list[TaskRunInfo]] = {}
        known = {info.id for info in infos}
        for info in infos:
            parent = info.parent_id if info.parent_id in known else None
            children.setdefault(parent, []).append(info)

        def build(info: TaskRunInfo) -> TaskRunNode:
            return TaskRunNode(info, tuple(build(c) for c in children.get(info.id, ())))

        return [build(info) for info in children.get(None, ())]

    def values(
        self,
        *,
        type: str | None = None,
        run: str | None = None,
        task: str | None = None,
        tag: TagFilter | None = None,
        since: TimeLike | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[ValueInfo]:
        """Values, newest first: by type name (glob), produced in a run or by a task, tag."""
        limit, offset = check_page(limit, offset)
        stmt = select(Value.hash)
        if type:
            stmt = stmt.where(Value.type_name.like(glob_to_like(type), escape="\\"))
        with self._session() as session:
            if run:
                run_id = ids.resolve(session, run, self.root, kinds=("run",)).id
                stmt = stmt.where(Value.hash.in_(select(TaskRun.value_hash).where(TaskRun.run_id == run_id)))
            if task:
                made = select(CallRow.value_hash).join(TaskDef, TaskDef.hash == CallRow.task_hash)
                stmt = stmt.where(Value.hash.in_(made.where(task_condition(TaskDef.name, task))))
            for entity_ids in tagged(parse_tags(tag)):
                stmt = stmt.where(Value.hash.in_(entity_ids))
            if since is not None:
                stmt = stmt.where(Value.created_at >= parse_time(since))
            stmt = stmt.order_by(Value.created_at.desc(), Value.hash).limit(limit).offset(offset)
            hashes = session.scalars(stmt).all()
            found = _load.values(session, hashes, with_tags=True)
            return [found[h] for h in hashes if h in found]

    def files(
        self, pattern: str | Path | None = None, *, run: str | None = None,
        limit: int | None = 50, offset: int = 0,
    ) -> list[FileInfo]:
        """Files whose path matches a glob (relative paths match anywhere), newest first."""
        limit, offset = check_page(limit, offset)
        stmt = select(FileRow)
        if pattern:
            stmt = stmt.where(file_condition(pattern, self.root))
        with self._session() as session:
            if run:
                run_id = ids.resolve(session, run, self.root, kinds=("run",)).id
                ran = select(TaskRun).where(TaskRun.run_id == run_id)
                used = select(Argument.value_hash).where(Argument.args_hash.in_(ran.with_only_columns(TaskRun.args_hash)))
                stmt = stmt.where(or_(FileRow.hash.in_(ran.with_only_columns(TaskRun.value_hash)), FileRow.hash.in_(used)))
            stmt = stmt.order_by(FileRow.created_at.desc(), FileRow.hash).limit(limit).offset(offset)
            return _load.files(session, session.scalars(stmt).all())

    # -- one record --------------------------------------------------------------------

    def resolve(self, id_or_prefix_or_path: str) -> Candidate:
        """Which record a user's id, prefix or path names (kind and full id)."""
        with self._session() as session:
            return ids.resolve(session, id_or_prefix_or_path, self.root)

    def matches(self, prefix: str) -> list[Candidate]:
        """Every record whose id starts with ``prefix`` (kind, full id, short description)."""
        if not ids.is_hex(prefix):
            return []
        with self._session() as session:
            return ids.find_by_prefix(session, prefix)

    def show(self, id_or_prefix_or_path: str) -> Record:
        """The run, task run, call, value or file an id, id prefix or file path names,
        with its relations loaded (logs, task runs, producers and users)."""
        with self._session() as session:
            found = ids.resolve(session, id_or_prefix_or_path, self.root)
            return self._load_one(session, found)

    def _load_one(self, session: Session, found: Candidate) -> Record:
        kind, key = found.record_kind, found.id
        if kind == "run":
            return _load.runs(session, [session.get_one(Run, key)])[0]
        if kind == "task_run":
            return _load.task_runs(session, [session.get_one(TaskRun, key)], with_logs=True)[0]
        if kind == "call":
            info = _load.calls(session, _load.call_rows(session, [key]))[0]
            parents, children = _call_edges(session, key)
            runs = session.scalars(
                select(TaskRun).where(TaskRun.call_hash == key)
                .order_by(TaskRun.started_at.desc().nulls_last()).limit(RELATED_LIMIT)
            ).all()
            return _replace(info, parents=parents, children=children,
                            task_runs=tuple(_load.task_runs(session, runs)))
        if kind == "value":
            value = _load.values(session, [key], with_tags=True)[key]
            made = session.scalars(
                select(CallRow.hash).where(CallRow.value_hash == key).order_by(CallRow.created_at.desc()).limit(RELATED_LIMIT)
            ).all()
            used = session.scalars(
                select(CallRow.hash).join(Argument, Argument.args_hash == CallRow.args_hash)
                .where(Argument.value_hash == key).order_by(CallRow.created_at.desc()).limit(RELATED_LIMIT)
            ).all()
            return _replace(value, produced_by=tuple(made), used_by=tuple(dict.fromkeys(used)))
        info_file = _load.files(session, [session.get_one(FileRow, key)])[0]
        runs = session.scalars(
            select(TaskRun).where(TaskRun.value_hash == key)
            .order_by(TaskRun.started_at.desc().nulls_last()).limit(RELATED_LIMIT)
        ).all()
        return _replace(info_file, task_runs=tuple(_load.task_runs(session, runs)))

    def get(self, id_or_prefix_or_path: str) -> Record:
        """Deprecated name of :meth:`show`."""
        _deprecated("Ledger.get()", "Ledger.show()")
        return self.show(id_or_prefix_or_path)

    def task_runs(self, **filters: Any) -> list[TaskRunInfo]:
        """Deprecated name of :meth:`query`."""
        _deprecated("Ledger.task_runs()", "Ledger.query()")
        return self.query(**filters)

    def logs(self, run_or_task_run: str) -> list[LogLine]:
        """Log lines of a run (all its task runs) or of one task run, oldest first."""
        with self._session() as session:
            found = ids.resolve(session, run_or_task_run, self.root, kinds=("run", "task_run"))
            if found.record_kind == "run":
                lines = _load.logs_for(session, run_id=found.id)
            else:
                lines = _load.logs_for(session, task_run_ids=[found.id])
        return sorted((line for group in lines.values() for line in group),
                      key=lambda line: (line.created_at or datetime.min.replace(tzinfo=UTC), line.id))

    # -- dataflow ----------------------------------------------------------------------

    def dataflow(
        self, x: str, *, downstream: bool = False, max_nodes: int = MAX_NODES
    ) -> Dataflow:
        """How a value or file was derived (or, ``downstream=True``, what was derived from it).

        ``x``: a value hash or prefix, a file path, or a task run / call / run (its result).
        """
        with self._session() as session:
            value_hash = self._value_of(session, ids.resolve(session, x, self.root), x)
            walk = _dataflow.downstream if downstream else _dataflow.upstream
            return walk(session, value_hash, max_nodes=max_nodes)

    def _value_of(self, session: Session, found: Candidate, x: str) -> str:
        if found.record_kind in ("value", "file"):
            return found.id
        column = {"task_run": TaskRun.value_hash, "call": CallRow.value_hash, "run": Run.result_hash}
        model = {"task_run": TaskRun, "call": CallRow, "run": Run}[found.record_kind]
        key = model.id if model is not CallRow else CallRow.hash  # type: ignore[attr-defined]
        value = session.scalar(select(column[found.record_kind]).where(key == found.id))
        if value is None:
            raise NotFoundError(
                f"{found.record_kind.replace('_', ' ')} {found.id[:8]} has no result value",
                hint="give the value, a file path, or a task run that finished",
            )
        return value

    # -- tags --------------------------------------------------------------------------

    def tag(self, entity: str, mapping: Mapping[str, str] | None = None, /, **pairs: str) -> list[TagInfo]:
        """Add ``key=value`` tags to a record (by id, prefix or path); its tags afterwards."""
        wanted = {**(mapping or {}), **pairs}
        if not wanted:
            raise UsageError("tag needs at least one key=value")
        with self._session() as session:
            found = ids.resolve(session, entity, self.root)
        now = datetime.now(UTC)
        rows = []
        for key, value in tag_rules.parse_tags(wanted):
            rows.append({"entity_id": found.id, "key": key, "value": value,
                         "entity_kind": found.record_kind, "created_at": now})
        with self._write() as session:
            upsert(session, Tag, rows, on=["entity_id", "key", "value"], update=[])
        return self.tags(found.id)

    def untag(self, entity: str, *keys: str, **pairs: str) -> int:
        """Remove tags: every value of each key in ``keys``, and each ``key=value`` pair."""
        if not keys and not pairs:
            raise UsageError("untag needs a key or a key=value to remove")
        with self._session() as session:
            found = ids.resolve(session, entity, self.root)
        conditions = [Tag.key == k for k in keys]
        conditions += [(Tag.key == k) & (Tag.value == str(v)) for k, v in pairs.items()]
        which = (Tag.entity_id == found.id, or_(*conditions))
        with self._write() as session:
            matching = session.scalar(select(func.count()).select_from(Tag).where(*which)) or 0
            result = session.execute(delete(Tag).where(*which))
            removed = int(result.rowcount or 0)  # type: ignore[attr-defined]
            if removed < matching:  # row security kept them: added by another role
                session.rollback()
                creds = self.settings.databases["default"].credentials("user")
                raise PrivilegeError(
                    f"the role '{creds.username if creds else '?'}' may not remove tags from "
                    f"{found.record_kind.replace('_', ' ')} {found.id[:8]}: the user role removes "
                    "only the tags it added and those of the runs it started",
                    hint="ask whoever added them, or the admin role, to remove them",
                )
            return removed

    def tags(self, entity_id: str) -> list[TagInfo]:
        with self._session() as session:
            return list(_load.tags_for(session, [entity_id]).get(entity_id, ()))


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


def _call_edges(session: Session, call: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    parents = session.scalars(select(CallEdge.parent_hash).where(CallEdge.child_hash == call).limit(RELATED_LIMIT)).all()
    children = session.scalars(
        select(CallEdge.child_hash).where(CallEdge.parent_hash == call).order_by(CallEdge.position)
    ).all()
    return tuple(dict.fromkeys(parents)), tuple(dict.fromkeys(children))


def _replace(record: Any, **changes: Any) -> Any:
    return dataclasses.replace(record, **changes)


__all__ = ["Ledger", "RunLog", "TaskRunNode"]
