"""Where each database stands: every known revision, and the ones each database holds.

The check before every run (:func:`~ledgerflow.migrations.heads.ensure_current`) lives in
:mod:`ledgerflow.migrations.heads`, which does not import Alembic.
"""

from __future__ import annotations

from ledgerflow.config.settings import Settings
from ledgerflow.db.database import Database
from ledgerflow.db.engines import Role
from ledgerflow.db.plugins import load_plugins
from ledgerflow.migrations.heads import read_heads
from ledgerflow.migrations.results import RevisionInfo
from ledgerflow.migrations.scripts import BindScripts, bind_scripts, binds_of

UNKNOWN_BRANCH = "?"


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
