"""The ORM session of a project: each table goes to the database its model names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from sqlalchemy import Engine, Table
from sqlalchemy.orm import Session

from ledgerflow.config.settings import DEFAULT_BIND
from ledgerflow.db.naming import bind_of


class Engines(Protocol):
    """What the session needs of :class:`~ledgerflow.db.database.Database`: an engine per bind."""

    def engine(self, bind: str = DEFAULT_BIND) -> Engine: ...


class RoutingSession(Session):
    """A session that sends each table to the database its model names."""

    def __init__(self, database: Engines, **kwargs: Any) -> None:
        self._database = database
        super().__init__(**kwargs)

    def get_bind(self, mapper: Any = None, clause: Any = None, **kwargs: Any) -> Engine:  # type: ignore[override]
        if mapper is not None:
            table = getattr(mapper, "local_table", None)
            if table is None:
                table = getattr(getattr(mapper, "mapper", None), "local_table", None)
            if table is not None:
                return self._database.engine(bind_of(table))
        if clause is not None:
            for table in _tables_of(clause):
                return self._database.engine(bind_of(table))
        return self._database.engine(DEFAULT_BIND)


def _tables_of(clause: Any) -> Iterator[Table]:
    table = getattr(clause, "table", None)
    if isinstance(table, Table):
        yield table
    for from_ in getattr(clause, "get_final_froms", list)():
        if isinstance(from_, Table):
            yield from_


_QUERY_SESSION: ContextVar[Session | None] = ContextVar("ledgerflow_query_session", default=None)


def current_query_session() -> Session | None:
    """The session ``Model.query`` uses here, if any (see :func:`query_session`)."""
    return _QUERY_SESSION.get()


@contextmanager
def query_session(session: Session) -> Iterator[Session]:
    """Within the block, ``Model.query`` (``User.query.all()``) queries in ``session``."""
    token = _QUERY_SESSION.set(session)
    try:
        yield session
    finally:
        _QUERY_SESSION.reset(token)
