"""Moving and trimming ledger records: what ``export``, ``import``, ``push``, ``pull``,
``prune`` and ``cache`` call.

Every function takes the project's :class:`~ledgerflow.config.Settings`; its result has a
``to_json()`` that is the command's documented ``--json`` shape (docs/provenance.md). The
functions that write (``import_``, ``push``, ``pull``, ``prune``, ``cache_clear``) refuse a
ledger migrated by a newer ledgerflow, as a run does, before touching anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ledgerflow.config.settings import hide_url_passwords as scrub
from ledgerflow.errors import DatabaseError

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.provenance.cache import CachedResult, TaskCacheStats
    from ledgerflow.provenance.exchange import ImportReport
    from ledgerflow.provenance.prune import PruneReport
    from ledgerflow.provenance.verify import RepairReport, VerifyReport

__all__ = [
    "CacheClearReport",
    "CacheReport",
    "cache_clear",
    "cache_list",
    "cache_repair",
    "cache_verify",
    "export",
    "import_",
    "prune",
    "pull",
    "push",
]

Progress = Callable[[int], None]
Moment = str | datetime | timedelta


def _moment(value: Moment | None, option: str) -> datetime | None:
    """A UTC time from a span back from now (``timedelta`` or ``"30d"``) or a date/time."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        from ledgerflow.provenance.exchange import cutoff

        return cutoff(value)
    from ledgerflow.provenance.query import parse_time

    return parse_time(value, option=option)


def _writable(settings: Settings, bind: str = "default") -> None:
    """Refuse, as ``run`` does, a ledger the library is too old (or too new) for, and a
    SQLite ledger this process may not write (before anything is read or changed)."""
    from ledgerflow.migrations import ensure_current

    ensure_current(settings)
    db = settings.databases.get(bind)
    if db is None or db.dialect != "sqlite" or db.path is None or not Path(db.path).exists():
        return
    path = Path(db.path)
    for place in (path, path.parent):
        if not os.access(place, os.W_OK):
            raise DatabaseError(
                f"database '{bind}' ({db.describe()}) is read-only here: cannot write "
                f"{'the file' if place == path else 'its directory'} {place}",
                hint="reading commands work on it; writing needs write access to the file "
                "and its directory",
            )


@contextmanager
def _refusals(settings: Settings, reads: str, writes: str) -> Iterator[None]:
    """A database refusing to be read (``reads``) or written (``writes``) is one line."""
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()
        detail = reason[0] if reason else type(exc).__name__
        lowered = detail.lower()
        if not any(word in lowered for word in ("permission denied", "readonly", "read-only")):
            raise
        statement = (exc.statement or "").lstrip().upper()
        bind = reads if statement.startswith(("SELECT", "WITH")) else writes
        db = settings.databases[bind]
        need = "SELECT" if bind == reads and reads != writes else "write access"
        raise DatabaseError(
            f"database '{bind}' ({db.describe()}) refused: {scrub(detail)}",
            hint=f"the role of databases.{bind} in {db.source} needs {need} on the ledger "
            "tables (`ledgerflow db upgrade` grants the user role its rights)",
        ) from None


def export(
    settings: Settings,
    runs: Sequence[str] | None = None,
    *,
    since: Moment | None = None,
    output: str | os.PathLike[str] | IO[str] = "-",
    progress: Progress | None = None,
) -> int:
    """Write the records the runs reach (every run when none is given) as JSON lines to
    ``output`` (a path, ``-`` for stdout, or a text stream); how many records."""
    from ledgerflow.provenance.exchange import export as export_records

    return export_records(settings, runs or None, _moment(since, "since"), output, progress=progress)


def import_(
    settings: Settings, path: str | os.PathLike[str] | IO[Any], *, progress: Progress | None = None
) -> ImportReport:
    """Add the records of an export file (``-``: stdin) that the ledger lacks, in one
    transaction; a corrupt line stops it and nothing is imported."""
    from ledgerflow.provenance.exchange import import_ as import_records

    _writable(settings)
    with _refusals(settings, "default", "default"):
        return import_records(settings, path, progress=progress)


def push(
    settings: Settings,
    bind: str,
    runs: Sequence[str] | None = None,
    *,
    since: Moment | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the default ledger's records (every run, or ``runs``) into the database ``bind``."""
    from ledgerflow.provenance import exchange

    _writable(settings, bind)
    with _refusals(settings, "default", bind):
        return exchange.push(settings, bind, runs=runs or None, since=_moment(since, "since"),
                             progress=progress)


def pull(
    settings: Settings,
    bind: str,
    runs: Sequence[str] | None = None,
    *,
    since: Moment | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the records of the database ``bind`` (every run, or ``runs``) into the default ledger."""
    from ledgerflow.provenance import exchange

    _writable(settings)
    with _refusals(settings, bind, "default"):
        return exchange.pull(settings, bind, runs=runs or None, since=_moment(since, "since"),
                             progress=progress)


def prune(
    settings: Settings,
    older_than: Moment,
    *,
    status: str | None = None,
    keep_cache: bool = False,
    dry_run: bool = False,
) -> PruneReport:
    """Remove the runs started before ``older_than`` (a span back from now, ``"30d"``, or a
    date) and every record only they needed; ``dry_run`` counts without removing."""
    from ledgerflow.provenance.prune import prune as prune_ledger

    moment = _moment(older_than, "older-than")
    assert moment is not None
    _writable(settings)
    with _refusals(settings, "default", "default"):
        return prune_ledger(settings, max(datetime.now(UTC) - moment, timedelta(0)),
                            status=status, keep_cache=keep_cache, dry_run=dry_run)


@dataclass(frozen=True)
class CacheReport:
    """``cache list``: statistics per task, and a task's latest entries when one was named."""

    tasks: tuple[TaskCacheStats, ...]
    entries: tuple[CachedResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {"tasks": [t.to_json() for t in self.tasks],
                "entries": [e.to_json() for e in self.entries]}


def cache_list(settings: Settings, task: str | None = None, *, entries: int = 20) -> CacheReport:
    """Cache entries and hit/miss statistics per task; with ``task``, also its ``entries``
    most recent cache entries."""
    from ledgerflow.provenance import cache as lib

    stats = lib.cache_list(settings, task)
    latest = lib.cache_entries(settings, task, limit=entries) if task else []
    return CacheReport(tuple(stats), tuple(latest))


@dataclass(frozen=True)
class CacheClearReport:
    """``cache clear``: how many entries went (or, with ``dry_run``, would go)."""

    task: str | None
    removed: int
    dry_run: bool

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "removed": self.removed, "dry_run": self.dry_run}


def cache_clear(settings: Settings, task: str | None = None, *, dry_run: bool = False) -> CacheClearReport:
    """Remove the cache entries (of one task), so the next runs execute those calls again."""
    from ledgerflow.provenance import cache as lib

    _writable(settings)
    with _refusals(settings, "default", "default"):
        removed = lib.cache_clear(settings, task, dry_run=dry_run)
    return CacheClearReport(task, removed, dry_run)


def cache_verify(settings: Settings) -> VerifyReport:
    """Check every cache entry and value of the ledger, changing nothing: entries must agree
    with the call they claim, values must be reachable and their bytes must check out
    (plain data hashes to its address; a pickle matches its digest and comes from a
    trusted writer). The report lists one problem per line (``report.problems``)."""
    from ledgerflow.provenance.verify import verify_cache

    return verify_cache(settings)


def cache_repair(
    settings: Settings, *, dry_run: bool = True, drop_untrusted: bool = False
) -> RepairReport:
    """``cache verify --repair``: check the cache, then (unless ``dry_run``, the default)
    remove, as the admin, what is damaged, so the next run computes those calls once and
    records results later runs use: inconsistent cache entries go; a value whose bytes fail
    their check loses them (inline and in the value store) and the next run that computes
    it stores them again; with ``drop_untrusted``, pickles of writers not in
    ``cache.trust`` too. Runs, task runs, calls and arguments are kept. With the user role
    only (PostgreSQL) it raises :class:`~ledgerflow.errors.PrivilegeError` and changes
    nothing."""
    from ledgerflow.provenance.verify import repair_cache

    if not dry_run:
        _writable(settings)
    with _refusals(settings, "default", "default"):
        return repair_cache(settings, dry_run=dry_run, drop_untrusted=drop_untrusted)
