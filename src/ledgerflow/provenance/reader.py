"""Opening a ledger to read it, and listing its runs, with SQLAlchemy Core only.

:class:`~ledgerflow.provenance.ledger.Ledger` opens and lists runs through these functions;
:func:`list_project_runs` does the same without building a ``Ledger``, so ``ledgerflow runs``
does not load the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ledgerflow.db.database import Database
from ledgerflow.errors import DatabaseError
from ledgerflow.provenance import _load
from ledgerflow.provenance.filters import check_page as check_page
from ledgerflow.provenance.query import TagFilter, TimeLike, runs_statement

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.provenance.records import RunInfo


def open_reader(settings: Settings, *, check_schema: bool = True) -> Database:
    """The read-only database of the ledger, after checking its schema against the library.

    A ledger whose schema does not match is refused (or upgraded, with ``auto_migrate``).
    """
    if check_schema:
        from ledgerflow.migrations import ensure_current

        ensure_current(settings)
    return Database(settings, read_only=True)


def reap_stale_runs(reader: Database, writer: Database) -> list[str]:
    """Mark dead runs ``interrupted``, when this process may write the ledger: on a
    read-only ledger they are left as they are, and reading goes on."""
    from sqlalchemy.exc import DBAPIError

    from ledgerflow.ledger.heartbeat import reap_stale_runs as reap

    try:
        return reap(reader.engine(), writer=writer.engine())
    except (DBAPIError, DatabaseError) as exc:
        if read_only_failure(exc):
            return []
        raise


def read_only_failure(exc: BaseException) -> bool:
    """Whether a failed write failed because the ledger may only be read."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(word in text for word in (
        "readonly database", "read-only", "unable to open database file", "permission denied",
    ))


def list_runs(
    reader: Any,
    *,
    status: str | Iterable[str] | None = None,
    task: str | None = None,
    tag: TagFilter | None = None,
    since: TimeLike | None = None,
    until: TimeLike | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> list[RunInfo]:
    """Runs, newest first, with their task runs counted by status, through ``reader`` (a
    Core connection or an ORM session)."""
    limit, offset = check_page(limit, offset)
    stmt = runs_statement(status=status, task=task, tag=tag, since=since, until=until)
    rows = reader.execute(stmt.limit(limit).offset(offset)).all()
    return _load.runs(reader, rows)


def list_project_runs(settings: Settings, **filters: Any) -> list[RunInfo]:
    """:func:`list_runs` of the project's ledger, opened (and closed) the way ``Ledger.open``
    does: schema checked, dead runs marked ``interrupted``."""
    reader = open_reader(settings)
    writer = Database(settings)
    try:
        reap_stale_runs(reader, writer)
        with reader.engine().connect() as connection:
            return list_runs(connection, **filters)
    finally:
        reader.dispose()
        writer.dispose()
