"""Helpers for the common database chores of a pipeline, each one round trip where possible.

Every function takes the session first; :class:`Helpers` binds them to one session and is
what tasks see as ``context.db``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ledgerflow.db import _fastpath
from ledgerflow.db.tracking import tracker_of
from ledgerflow.errors import UsageError

M = TypeVar("M")
T = TypeVar("T")

BATCH_ROWS = 10_000


def _dialect_insert(session: Session, model: type) -> Any:
    name = session.get_bind(mapper=model.__mapper__).dialect.name  # type: ignore[attr-defined]
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model)
    raise UsageError(f"no upsert support for the '{name}' dialect")


def get_or_create(
    session: Session,
    model: type[M],
    filter_by: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> tuple[M, bool]:
    """The row matching ``filter_by``, inserted with ``defaults`` when missing.

    Safe when several processes race on the same key, provided ``filter_by`` names a unique
    key of the table: the insert is ``ON CONFLICT DO NOTHING`` and the loser reads the
    winner's row. Returns ``(obj, created)``.
    """
    if not filter_by:
        raise UsageError("get_or_create needs filter_by: the columns that identify the row")
    found = session.scalars(select(model).filter_by(**filter_by).limit(1)).first()
    if found is None:
        values = {**(defaults or {}), **filter_by}
        stmt = _dialect_insert(session, model).values(values).on_conflict_do_nothing()
        created = session.scalars(
            stmt.returning(model), execution_options={"populate_existing": True}
        ).first()
        if created is not None:
            _note_object(session, created)
            return created, True
        found = session.scalars(select(model).filter_by(**filter_by).limit(1)).one()
    _note_object(session, found)  # the caller relies on this row as if it wrote it
    return found, False


def _note_object(session: Session, obj: Any) -> None:
    """Tell the session's write tracker (a task's session has one) about ``obj``."""
    tracker = tracker_of(session)
    if tracker is not None:
        tracker.note_object(obj)


def _batches(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def bulk_insert(
    session: Session, model: type, rows: Iterable[Mapping[str, Any]], *, batch_size: int = BATCH_ROWS
) -> int:
    """Insert many rows (mappings of column key to value) on the fastest path of the dialect.

    Rows are consumed ``batch_size`` at a time, so memory follows one batch, not the input.
    SQLite uses the driver's ``executemany``; PostgreSQL uses ``COPY`` for batches of more
    than a few hundred rows. Objects already in the session are not refreshed.
    Returns the number of rows inserted.
    """
    session.flush()
    table = model.__table__  # type: ignore[attr-defined]
    connection = session.connection(bind_arguments={"mapper": model.__mapper__})  # type: ignore[attr-defined]
    writer = _fastpath.writer_for(connection, table)
    tracker = tracker_of(session)
    total = 0
    for batch in _batches(rows, batch_size):
        total += writer.write(batch)
        if tracker is not None:
            tracker.note_rows(table, batch)
    return total


def upsert(
    session: Session,
    model: type,
    rows: Iterable[Mapping[str, Any]],
    *,
    on: Sequence[str],
    update: Sequence[str] | None = None,
    batch_size: int = BATCH_ROWS,
) -> int:
    """Insert rows, updating the existing row when the unique key ``on`` already exists.

    ``update`` lists the columns to overwrite (default: every column in the rows but ``on``).
    Returns the number of rows sent.
    """
    if not on:
        raise UsageError("upsert needs on=[...]: the columns of a unique key")
    session.flush()
    total = 0
    for batch in _batches(rows, batch_size):
        columns = update if update is not None else [k for k in batch[0] if k not in on]
        stmt = _dialect_insert(session, model)
        if columns:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(on), set_={c: stmt.excluded[c] for c in columns}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(on))
        session.execute(stmt, batch)
        total += len(batch)
    return total


def update(session: Session, obj: M, values: Mapping[str, Any]) -> M:
    """Set attributes of a mapped object and write them; returns the object."""
    mapper = type(obj).__mapper__  # type: ignore[attr-defined]
    unknown = [key for key in values if key not in mapper.attrs]
    if unknown:
        raise UsageError(
            f"{type(obj).__name__} has no attribute {', '.join(map(repr, unknown))}",
            hint=f"known: {', '.join(sorted(mapper.attrs.keys()))}",
        )
    for key, value in values.items():
        setattr(obj, key, value)
    session.flush()
    return obj


def find(session: Session, model: type[M], **filters: Any) -> list[M]:
    """Every row whose columns equal ``filters`` (all rows when none is given)."""
    return list(session.scalars(select(model).filter_by(**filters)))


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def paginate(session: Session, query: Select[Any], page: int = 1, per_page: int = 50) -> Page[Any]:
    """One page (1-based) of a ``select()``, with the total count of rows."""
    if page < 1 or per_page < 1:
        raise UsageError(f"page and per_page must be >= 1 (got page={page}, per_page={per_page})")
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    result = session.execute(query.limit(per_page).offset((page - 1) * per_page))
    items = list(result.scalars()) if len(result.keys()) == 1 else [tuple(r) for r in result]
    return Page(items, page, per_page, int(total))


class Helpers:
    """The helpers bound to one session (``context.db`` inside a task)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_or_create(
        self, model: type[M], filter_by: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
    ) -> tuple[M, bool]:
        return get_or_create(self.session, model, filter_by, defaults)

    def bulk_insert(self, model: type, rows: Iterable[Mapping[str, Any]], **kw: Any) -> int:
        return bulk_insert(self.session, model, rows, **kw)

    def upsert(self, model: type, rows: Iterable[Mapping[str, Any]], **kw: Any) -> int:
        return upsert(self.session, model, rows, **kw)

    def update(self, obj: M, values: Mapping[str, Any]) -> M:
        return update(self.session, obj, values)

    def find(self, model: type[M], **filters: Any) -> list[M]:
        return find(self.session, model, **filters)

    def paginate(self, query: Select[Any], page: int = 1, per_page: int = 50) -> Page[Any]:
        return paginate(self.session, query, page, per_page)

    def commit(self) -> None:
        self.session.commit()
