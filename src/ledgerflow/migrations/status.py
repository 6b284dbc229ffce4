"""Where each database stands: history, current revisions, and the check before every run.

:func:`ensure_current` runs before every command that uses a database, so it is cheap: the
revision scripts are loaded once per process (:func:`~ledgerflow.migrations.scripts.bind_scripts`)
and each database costs one ``SELECT`` on its version table, made with the runtime role
over a connection kept for the life of the process.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ledgerflow.config.settings import Settings
from ledgerflow.db.database import Database
from ledgerflow.db.engines import Role, create_bind_engine, database_url, scrub
from ledgerflow.db.plugins import load_plugins
from ledgerflow.errors import DatabaseError, MigrationError, SchemaOutdatedError, SchemaTooNewError
from ledgerflow.migrations.results import RevisionInfo
from ledgerflow.migrations.runner import upgrade
from ledgerflow.migrations.scripts import (
    VERSION_TABLE,
    BindScripts,
    Branch,
    bind_scripts,
    binds_of,
)

UPGRADE_HINT = "run `ledgerflow db upgrade`"
UNKNOWN_BRANCH = "?"


def read_heads(engine: Engine) -> tuple[str, ...] | None:
    """The revisions in the version table, or None when the table does not exist."""
    with engine.connect() as connection:
        try:
            rows = connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").all()
        except DBAPIError as exc:
            if _missing_table(exc):
                return None
            raise DatabaseError(
                f"cannot read the migration version of {engine.url.database}: "
                f"{scrub(str(exc.orig).strip().splitlines()[0])}",
                hint="check that the role in ledgerflow.yml may read the version table",
            ) from None
    return tuple(sorted(row[0] for row in rows))


def _missing_table(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) == "42P01":
        return True
    return "no such table" in str(exc.orig)


def _reader(settings: Settings, bind: str) -> Database:
    """Admin when configured (these are the migration commands), else the runtime role."""
    return Database(settings, role=reading_role(settings, bind), read_only=True)


def reading_role(settings: Settings, bind: str) -> Role:
    db = settings.databases[bind]
    return "admin" if db.dialect == "sqlite" or db.admin is not None else "user"


def _targets(settings: Settings, bind: str | None) -> list[BindScripts]:
    plugins = load_plugins(settings)
    scripts = [bind_scripts(settings, name, plugins) for name in binds_of(settings, bind)]
    return [s for s in scripts if s.owner or bind is not None]


def _current_of(settings: Settings, bind: str) -> tuple[str, ...]:
    database = _reader(settings, bind)
    try:
        return read_heads(database.engine(bind)) or ()
    finally:
        database.dispose()


def history(settings: Settings, *, bind: str | None = None) -> list[RevisionInfo]:
    """Every known revision, by database and branch, newest first within each branch."""
    result: list[RevisionInfo] = []
    for scripts in _targets(settings, bind):
        if not scripts.owner:
            continue
        current = set(_current_of(settings, scripts.bind))
        heads = set(scripts.heads.values())
        for branch in scripts.branches:
            for script in reversed(scripts.scripts_of(branch)):
                down = script.down_revision
                result.append(
                    RevisionInfo(
                        bind=scripts.bind,
                        branch=branch.label,
                        revision=script.revision,
                        down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                        message=script.doc,
                        is_head=script.revision in heads,
                        is_current=script.revision in current,
                    )
                )
    return result


def current(settings: Settings, *, bind: str | None = None) -> dict[str, list[RevisionInfo]]:
    """The revisions each database's version table holds (one per applied branch)."""
    result: dict[str, list[RevisionInfo]] = {}
    for scripts in _targets(settings, bind):
        heads = set(scripts.heads.values())
        infos = []
        for revision in _current_of(settings, scripts.bind):
            script = scripts.directory.revision_map.get_revision(revision) if revision in scripts.owner else None
            if script is None:
                infos.append(
                    RevisionInfo(scripts.bind, UNKNOWN_BRANCH, revision, None,
                                 "unknown here: migrated by a newer ledgerflow or plugin", False, True)
                )
                continue
            down = script.down_revision
            infos.append(
                RevisionInfo(
                    bind=scripts.bind,
                    branch=scripts.label_of(revision),
                    revision=revision,
                    down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                    message=script.doc,  # type: ignore[attr-defined]
                    is_head=revision in heads,
                    is_current=True,
                )
            )
        result[scripts.bind] = infos
    return result


def ensure_current(settings: Settings, *, auto_migrate: bool | None = None) -> None:
    """Stop unless every database is at the head of every branch it needs.

    Behind (or never migrated): :class:`SchemaOutdatedError`, or an upgrade when
    ``auto_migrate`` (default: ``settings.auto_migrate``) is true. Holding a revision no
    script knows: :class:`SchemaTooNewError`, always; nothing is ever downgraded.
    """
    auto = settings.auto_migrate if auto_migrate is None else auto_migrate
    plugins = load_plugins(settings)
    for name in binds_of(settings, None):
        scripts = bind_scripts(settings, name, plugins)
        if not scripts.heads:
            continue
        problem = compare_heads(settings, scripts, read_heads(_runtime_engine(settings, name)))
        if problem is None:
            continue
        if auto and isinstance(problem, SchemaOutdatedError):
            upgrade(settings, bind=name)
            continue
        raise problem


_engines: dict[tuple[object, ...], Engine] = {}


def _runtime_engine(settings: Settings, bind: str) -> Engine:
    """A read-only engine of the runtime role, kept for the life of the process.

    Connecting is most of the cost of :func:`ensure_current` (on PostgreSQL the password
    exchange and the dialect's first-connect queries), so repeated checks reuse one pooled
    connection; on PostgreSQL in autocommit mode, so a check is the pool's ping and the
    ``SELECT``, no ``BEGIN``/``ROLLBACK``. Keyed by process id: a forked worker never reuses its parent's socket.
    """
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
    scripts: BindScripts,
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


def _first_need(scripts: BindScripts, needed: list[Branch]) -> str:
    branch = next(b for b in needed if b.label in scripts.heads)
    return f"{branch.describe()} needs {scripts.heads[branch.label]}"
