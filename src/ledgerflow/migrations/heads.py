"""The check before every run and read: is each database at the revisions this install knows?

:func:`ensure_current` costs one ``SELECT`` on each database's version table, compared with
the heads read from the revision files as text (:func:`~ledgerflow.migrations.branches.known_revisions`),
so it imports no Alembic. Alembic is loaded only to migrate (``auto_migrate``), or when the
revision files cannot be read without it (then it also names what is wrong with them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from ledgerflow.config.settings import Settings
from ledgerflow.db.plugins import Plugin, load_plugins
from ledgerflow.errors import DatabaseError, MigrationError, SchemaOutdatedError, SchemaTooNewError
from ledgerflow.migrations.branches import (
    VERSION_TABLE,
    Branch,
    binds_of,
    branches_for,
    known_revisions,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

UPGRADE_HINT = "run `ledgerflow db upgrade`"


class Revisions(Protocol):
    """What the check needs to know of a bind's scripts (read as text, or by Alembic)."""

    bind: str
    branches: list[Branch]
    owner: dict[str, Branch]
    heads: dict[str, str]


def revisions_of(settings: Settings, bind: str, plugins: Sequence[Plugin]) -> Revisions:
    """The bind's revisions, read as text when possible, else loaded (and checked) by Alembic."""
    known = known_revisions(bind, branches_for(bind, plugins))
    if known is not None:
        return known
    from ledgerflow.migrations.scripts import bind_scripts

    return bind_scripts(settings, bind, plugins)


def ensure_current(settings: Settings, *, auto_migrate: bool | None = None) -> None:
    """Stop unless every database is at the head of every branch it needs.

    Behind (or never migrated): :class:`SchemaOutdatedError`, or an upgrade when
    ``auto_migrate`` (default: ``settings.auto_migrate``) is true. Holding a revision no
    script knows: :class:`SchemaTooNewError`, always; nothing is ever downgraded.
    """
    auto = settings.auto_migrate if auto_migrate is None else auto_migrate
    plugins = load_plugins(settings)
    for name in binds_of(settings, None):
        scripts = revisions_of(settings, name, plugins)
        if not scripts.heads:
            continue
        problem = compare_heads(settings, scripts, read_heads(_runtime_engine(settings, name)))
        if problem is None:
            continue
        if auto and isinstance(problem, SchemaOutdatedError):
            from ledgerflow.migrations.runner import upgrade

            upgrade(settings, bind=name)
            continue
        raise problem


def heads_are_current(settings: Settings, read_heads_of: Callable[[str], tuple[str, ...] | None]) -> bool:
    """Whether every database is at the head of every branch it needs, each version table
    read by ``read_heads_of(bind)`` (sorted revisions, None without the table).

    False whenever :func:`ensure_current` has more to say (an outdated or too new
    database, revision files that need Alembic to be read): call it then.
    """
    plugins = load_plugins(settings)
    for name in binds_of(settings, None):
        known = known_revisions(name, branches_for(name, plugins))
        if known is None:
            return False
        if known.heads and compare_heads(settings, known, read_heads_of(name)) is not None:
            return False
    return True


#: The query that reads a database's revisions (each a row of one column).
HEADS_SQL = f"SELECT version_num FROM {VERSION_TABLE}"


def read_heads(engine: Engine) -> tuple[str, ...] | None:
    """The revisions in the version table, or None when the table does not exist."""
    from sqlalchemy.exc import DBAPIError

    from ledgerflow.db.engines import scrub

    with engine.connect() as connection:
        try:
            rows = connection.exec_driver_sql(HEADS_SQL).all()
        except DBAPIError as exc:
            if _missing_table(exc):
                return None
            raise DatabaseError(
                f"cannot read the migration version of {engine.url.database}: "
                f"{scrub(str(exc.orig).strip().splitlines()[0])}",
                hint="check that the role in ledgerflow.yml may read the version table",
            ) from None
    return tuple(sorted(row[0] for row in rows))


def _missing_table(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "42P01":
        return True
    return "no such table" in str(orig)


_engines: dict[tuple[object, ...], Engine] = {}


def _runtime_engine(settings: Settings, bind: str) -> Engine:
    """A read-only engine of the runtime role, kept for the life of the process.

    Connecting is most of the cost of :func:`ensure_current` (on PostgreSQL the password
    exchange and the dialect's first-connect queries), so repeated checks reuse one pooled
    connection; on PostgreSQL in autocommit mode, so a check is the pool's ping and the
    ``SELECT``, no ``BEGIN``/``ROLLBACK``. Keyed by process id: a forked worker never reuses its parent's socket.
    """
    from ledgerflow.db.engines import create_bind_engine, database_url

    db = settings.databases[bind]
    key = (os.getpid(), database_url(db, "user"))
    engine = _engines.get(key)
    if engine is None:
        options = {"isolation_level": "AUTOCOMMIT"} if db.dialect == "postgresql" else {}
        engine = _engines[key] = create_bind_engine(db, "user", read_only=True, **options)
    return engine


def dispose_engines() -> None:
    """Close the connections :func:`ensure_current` keeps (tests, long-lived processes)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def compare_heads(
    settings: Settings,
    scripts: Revisions,
    current: tuple[str, ...] | None,
    only: Collection[str] | None = None,
) -> MigrationError | None:
    """Why a database at ``current`` does not fit the scripts, or None when it does.

    ``only`` limits the "behind" check to these branch labels; an unknown revision in the
    database is reported whatever the branch.
    """
    db = settings.databases[scripts.bind]
    where = f"database '{db.name}' ({db.describe()})"
    unknown = [rev for rev in current or () if rev not in scripts.owner]
    if unknown:
        return SchemaTooNewError(
            f"{where} is at revision {', '.join(unknown)}, which no migration of this "
            "installation knows: it was migrated by a newer ledgerflow or plugin",
            hint="upgrade ledgerflow and the plugins to the versions that migrated it "
            "(pip install -U ...); databases are never downgraded automatically",
        )
    needed = [b for b in scripts.branches if only is None or b.label in only]
    if not any(b.label in scripts.heads for b in needed):
        return None
    behind = []
    for branch in needed:
        head = scripts.heads.get(branch.label)
        if head is None or head in (current or ()):
            continue
        at = [rev for rev in current or () if scripts.owner[rev] is branch]
        behind.append(
            f"is at revision {at[0] if at else 'base (none applied)'} but "
            f"{branch.describe()} needs {head}"
        )
    if current is None:
        return SchemaOutdatedError(
            f"{where} has no migration applied (no {VERSION_TABLE} table) but "
            f"{_first_need(scripts, needed)}",
            hint=UPGRADE_HINT,
        )
    if behind:
        more = f" (and {len(behind) - 1} more branch(es))" if len(behind) > 1 else ""
        return SchemaOutdatedError(f"{where} {behind[0]}{more}", hint=UPGRADE_HINT)
    return None


def _first_need(scripts: Revisions, needed: list[Branch]) -> str:
    branch = next(b for b in needed if b.label in scripts.heads)
    return f"{branch.describe()} needs {scripts.heads[branch.label]}"
