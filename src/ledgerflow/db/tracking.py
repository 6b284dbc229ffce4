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
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, Table, event, inspect
from sqlalchemy.orm import Session

from ledgerflow.db.naming import bind_of
from ledgerflow.db.session import Engines, RoutingSession

#: Keys kept per table and session; beyond, the table is checked as a whole (it must hold rows).
MAX_KEYS_PER_TABLE = 50_000

_INFO_KEY = "ledgerflow.write_tracker"

WrittenRow = tuple[str, str, str | None]


def key_json(columns: Iterable[str], values: Iterable[Any]) -> str:
    """The canonical JSON of a primary key: ``{"column": value, ...}`` with sorted columns."""
    return json.dumps(
        dict(zip(columns, values)), sort_keys=True, separators=(",", ":"), default=str
    )


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


class TrackedSession(RoutingSession):
    """A :class:`~ledgerflow.db.session.RoutingSession` that reports what it writes (the
    session a task gets as ``context.session``)."""

    def __init__(self, database: Engines, **kwargs: Any) -> None:
        super().__init__(database, **kwargs)
        self.info[_INFO_KEY] = WriteTracker()

    @property
    def tracker(self) -> WriteTracker:
        found = tracker_of(self)
        assert found is not None
        return found


def track(session: Session) -> WriteTracker:
    """The tracker of ``session``, which starts reporting what it writes (idempotent).

    A :class:`TrackedSession` is tracked from the start and costs less: its listeners are
    registered once for the class, not for each session."""
    found = tracker_of(session)
    if found is not None and isinstance(session, TrackedSession):
        return found
    if found is None:
        found = session.info[_INFO_KEY] = WriteTracker()
        for name, listener in _SESSION_LISTENERS.items():
            event.listen(session, name, listener)
    return found


# -- listeners -------------------------------------------------------------------------


def _inserted(session: Session, obj: Any) -> None:
    tracker = tracker_of(session)
    if tracker is not None:
        tracker.note_object(obj)


def _updated(session: Session, _context: Any) -> None:
    tracker = tracker_of(session)
    if tracker is None:
        return
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            tracker.note_object(obj)


def _deleted(session: Session, obj: Any) -> None:
    tracker = tracker_of(session)
    if tracker is not None:
        tracker.note_forgotten(obj)


def _committed(session: Session) -> None:
    tracker = tracker_of(session)
    if tracker is not None:
        tracker.committed()


def _rolled_back(session: Session) -> None:
    tracker = tracker_of(session)
    if tracker is not None:
        tracker.rolled_back()


#: the connections of tracked sessions (a session gets a new one for each transaction)
_CONNECTIONS: weakref.WeakKeyDictionary[Connection, tuple[WriteTracker, Session]] = (
    weakref.WeakKeyDictionary()
)
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _connected(session: Session, _transaction: Any, connection: Connection) -> None:
    tracker = tracker_of(session)
    if tracker is None:
        return
    _CONNECTIONS[connection] = (tracker, session)
    engine = connection.engine
    if engine not in _ENGINES:
        _ENGINES.add(engine)
        event.listen(engine, "before_cursor_execute", _statement)


def _statement(
    connection: Connection,
    _cursor: Any,
    _sql: str,
    _parameters: Any,
    context: Any,
    _executemany: bool,
) -> None:
    """A Core INSERT or UPDATE on the connection of a tracked session (not its flushes,
    whose objects are noted by identity)."""
    found = _CONNECTIONS.get(connection)
    if found is None or context is None or not (context.isinsert or context.isupdate):
        return
    tracker, session = found
    compiled = context.compiled
    if compiled is None or getattr(session, "_flushing", False):
        return
    table = getattr(compiled.statement, "table", None)
    if not isinstance(table, Table):
        return
    if context.isupdate:
        tracker.note_rows(table, [{}])  # which rows an UPDATE reached is not known
    else:
        tracker.note_rows(table, context.compiled_parameters or [{}])


_SESSION_LISTENERS: dict[str, Callable[..., Any]] = {
    "pending_to_persistent": _inserted,
    "after_flush": _updated,
    "persistent_to_deleted": _deleted,
    "after_commit": _committed,
    "after_rollback": _rolled_back,
    "after_begin": _connected,
}
for _name, _listener in _SESSION_LISTENERS.items():
    event.listen(TrackedSession, _name, _listener)
