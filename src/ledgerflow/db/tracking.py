"""Which rows a session wrote: the tables and primary keys a task's session inserted or updated.

A task's cached result is honest only while the rows it wrote still exist. The session a
task gets (``context.session``, and ``context.db`` on top of it) is tracked here:

- objects the session inserted (``session.add``) or updated, by their mapper's table and
  primary key identity, once flushed;
- Core ``INSERT`` / ``UPDATE`` statements run through the session or its connection
  (``session.execute(insert(Model), rows)``, ``session.connection().execute(...)``), by the
  primary key values found in their parameters, else as "some rows of this table";
- the helpers ``get_or_create`` (the row found or created), ``bulk_insert`` and ``upsert``.

Not tracked: textual SQL (``text("INSERT ...")``), statements sent on another connection or
session, and rows written by the database itself (triggers). Writes rolled back are
forgotten; only what the session committed is reported by :meth:`WriteTracker.rows`.

A written row is ``(bind, table, key)``: ``key`` is the primary key as canonical JSON
(``{"id": 3}``), or None when only the table is known.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Table, event, inspect
from sqlalchemy.orm import Session

from ledgerflow.db.naming import bind_of

#: Keys kept per table and session; beyond, the table is checked as a whole (it must hold rows).
MAX_KEYS_PER_TABLE = 50_000

_INFO_KEY = "ledgerflow.write_tracker"

WrittenRow = tuple[str, str, str | None]


def key_json(columns: Iterable[str], values: Iterable[Any]) -> str:
    """The canonical JSON of a primary key: ``{"column": value, ...}`` with sorted columns."""
    return json.dumps(dict(zip(columns, values)), sort_keys=True, separators=(",", ":"), default=str)


class WriteTracker:
    """The rows one session wrote (see the module's docstring)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], set[str | None]] = {}
        self._committed: dict[tuple[str, str], set[str | None]] = {}

    # -- noting writes -------------------------------------------------------------------

    def _add(self, table: Table, key: str | None) -> None:
        keys = self._pending.setdefault((bind_of(table), table.fullname), set())
        if key is None or len(keys) < MAX_KEYS_PER_TABLE:
            keys.add(key)
        else:
            keys.add(None)

    def note_object(self, obj: Any) -> None:
        """A mapped object the session wrote (inserted, updated or found by get_or_create)."""
        state = inspect(obj)
        identity = state.identity
        mapper = state.mapper.base_mapper
        table = mapper.local_table
        if not isinstance(table, Table):
            return
        if identity is None:
            self._add(table, None)
            return
        names = [column.name for column in mapper.primary_key]
        self._add(table, key_json(names, identity))

    def note_rows(self, table: Table, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rows given as mappings (column key to value) written into ``table``."""
        columns = list(table.primary_key.columns)
        names = [column.name for column in columns]
        keys = [column.key for column in columns]
        found = self._pending.setdefault((bind_of(table), table.fullname), set())
        unknown = False
        for row in rows:
            if len(found) >= MAX_KEYS_PER_TABLE:
                unknown = True
                break
            if keys and all(row.get(k) is not None for k in keys):
                found.add(key_json(names, [row[k] for k in keys]))
            else:
                unknown = True
        if unknown:
            found.add(None)

    def note_forgotten(self, obj: Any) -> None:
        """An object the session deleted: it no longer needs to exist."""
        state = inspect(obj)
        mapper = state.mapper.base_mapper
        table = mapper.local_table
        if state.identity is None or not isinstance(table, Table):
            return
        names = [column.name for column in mapper.primary_key]
        key = key_json(names, state.identity)
        for found in (self._pending, self._committed):
            keys = found.get((bind_of(table), table.fullname))
            if keys is not None:
                keys.discard(key)

    # -- transactions --------------------------------------------------------------------

    def committed(self) -> None:
        for where, keys in self._pending.items():
            self._committed.setdefault(where, set()).update(keys)
        self._pending = {}

    def rolled_back(self) -> None:
        self._pending = {}

    def rows(self) -> list[WrittenRow]:
        """What the session committed: ``(bind, table, key)``; a table whose keys are
        known needs no "some rows" entry as well."""
        found: list[WrittenRow] = []
        for (bind, table), keys in sorted(self._committed.items()):
            known = sorted(k for k in keys if k is not None)
            if len(known) >= MAX_KEYS_PER_TABLE or not known:
                found.append((bind, table, None))
            found.extend((bind, table, key) for key in known)
        return found


def tracker_of(session: Session) -> WriteTracker | None:
    """The tracker of a tracked session, else None."""
    found = session.info.get(_INFO_KEY)
    return found if isinstance(found, WriteTracker) else None


def track(session: Session) -> WriteTracker:
    """Start tracking what ``session`` writes (idempotent); returns its tracker."""
    found = tracker_of(session)
    if found is not None:
        return found
    tracker = session.info[_INFO_KEY] = WriteTracker()

    @event.listens_for(session, "pending_to_persistent")
    def _inserted(_session: Session, obj: Any) -> None:
        tracker.note_object(obj)

    @event.listens_for(session, "after_flush")
    def _updated(flushed: Session, _context: Any) -> None:
        for obj in flushed.dirty:
            if flushed.is_modified(obj, include_collections=False):
                tracker.note_object(obj)

    @event.listens_for(session, "persistent_to_deleted")
    def _deleted(_session: Session, obj: Any) -> None:
        tracker.note_forgotten(obj)

    @event.listens_for(session, "after_commit")
    def _committed(_session: Session) -> None:
        tracker.committed()

    @event.listens_for(session, "after_rollback")
    def _rolled_back(_session: Session) -> None:
        tracker.rolled_back()

    def _statement(
        connection: Any, statement: Any, multiparams: Any, params: Any, _options: Any
    ) -> None:
        _core_statement(tracker, session, connection, statement, multiparams, params)

    @event.listens_for(session, "after_begin")
    def _connected(_session: Session, _transaction: Any, connection: Any) -> None:
        if not event.contains(connection, "before_execute", _statement):
            event.listen(connection, "before_execute", _statement)

    return tracker


def _core_statement(
    tracker: WriteTracker,
    session: Session,
    connection: Any,
    statement: Any,
    multiparams: Any,
    params: Any,
) -> None:
    """A Core INSERT or UPDATE on the connection of a tracked session (not its flushes,
    whose objects are noted by identity)."""
    from sqlalchemy.sql.dml import Insert, Update

    if not isinstance(statement, Insert | Update) or getattr(session, "_flushing", False):
        return
    table = statement.table
    if not isinstance(table, Table):
        return
    if isinstance(statement, Update):
        tracker.note_rows(table, [{}])  # which rows an UPDATE reached is not known
        return
    rows: list[Mapping[str, Any]] = []
    if multiparams:
        rows = [dict(p) for p in multiparams if isinstance(p, Mapping)]
    if not rows:
        compiled = statement.compile(dialect=connection.dialect)
        rows = [{**compiled.params, **(params or {})}]
    tracker.note_rows(table, rows)
