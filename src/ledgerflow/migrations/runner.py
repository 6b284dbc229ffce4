"""Applying, reverting and stamping revisions, one transaction per database.

Every run connects with the *admin* role and does all its work in ONE transaction, so a
failing revision leaves the database exactly at its previous revision:

- PostgreSQL has transactional DDL; after the revisions the user role is granted data rights
  (:mod:`ledgerflow.migrations.grants`) in the same transaction.
- SQLite DDL is transactional too because our engine emits ``BEGIN`` itself. Foreign keys are
  switched off on the connection before ``BEGIN`` (batch mode drops and recreates tables, which
  with foreign keys on would delete or block child rows) and ``PRAGMA foreign_key_check`` runs
  before the commit: any violation rolls everything back.

Concurrent runs on one database wait for each other (SQLite ``BEGIN IMMEDIATE``, a
PostgreSQL advisory lock); the second finds the work done. When several databases are
migrated (``bind=None``) each one commits on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script.revision import ResolutionError, RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, inspect

from ledgerflow.config.settings import Settings
from ledgerflow.db.database import Database
from ledgerflow.db.engines import scrub
from ledgerflow.db.model import DEFAULT_BIND
from ledgerflow.db.plugins import load_plugins
from ledgerflow.errors import LedgerflowError, MigrationError
from ledgerflow.migrations.grants import grant_user_role
from ledgerflow.migrations.results import Direction, DroppedTable, Step
from ledgerflow.migrations.scripts import VERSION_TABLE, BindScripts, bind_scripts, binds_of

HEADS = ("heads", "head")
#: Advisory lock taken for the whole migration transaction on PostgreSQL, so that two
#: processes upgrading at once (``auto_migrate``) run one after the other.
LOCK_KEY = 0x6C66_6D69_6772  # "lfmigr"


def upgrade(settings: Settings, revision: str = "heads", *, bind: str | None = None) -> list[Step]:
    """Apply revisions up to ``revision`` (default: the head of every branch).

    ``bind=None`` upgrades every configured database that has revisions; a specific revision
    then applies to the databases whose scripts know it. Returns the steps applied.
    """
    plugins = load_plugins(settings)
    targets = []
    for name in binds_of(settings, bind):
        scripts = bind_scripts(settings, name, plugins)
        if not scripts.owner:
            continue
        if bind is None and revision not in HEADS and not _knows(scripts, revision):
            continue
        targets.append(scripts)
    if bind is None and revision not in HEADS and not targets:
        raise MigrationError(
            f"unknown revision '{revision}': no database's migrations know it",
            hint="see `ledgerflow db history` for the known revisions",
        )
    steps: list[Step] = []
    for scripts in targets:
        destination = "heads" if revision in HEADS else revision
        steps += run(settings, scripts, "up", destination)
    return steps


def downgrade(settings: Settings, revision: str, *, bind: str = DEFAULT_BIND) -> list[Step]:
    """Revert revisions down to ``revision`` (an id, ``BRANCH@base``, ``BRANCH@-1``, ``base``)."""
    scripts = bind_scripts(settings, binds_of(settings, bind)[0])
    return run(settings, scripts, "down", revision)


def rehearse_downgrade(
    settings: Settings, revision: str, *, bind: str = DEFAULT_BIND
) -> tuple[list[Step], list[DroppedTable]]:
    """What :func:`downgrade` would do, changing nothing: its steps and the tables it drops.

    The revisions run for real in a transaction that is rolled back; each dropped table is
    given with the rows it holds.
    """
    scripts = bind_scripts(settings, binds_of(settings, bind)[0])
    rehearsal = Rehearsal()
    steps = run(settings, scripts, "down", revision, rehearsal=rehearsal)
    return steps, rehearsal.dropped


def stamp(settings: Settings, revision: str, *, bind: str = DEFAULT_BIND) -> None:
    """Record ``revision`` in the version table without running any migration."""
    scripts = bind_scripts(settings, binds_of(settings, bind)[0])
    run(settings, scripts, "stamp", revision)


def _knows(scripts: BindScripts, revision: str) -> bool:
    try:
        scripts.directory.revision_map.get_revisions(revision)
    except ResolutionError:
        return False
    except RevisionError:
        return True
    return True


@dataclass
class _Progress:
    scripts: BindScripts
    direction: Direction
    steps: list[Step] = field(default_factory=list)
    running: Any = None  # the RevisionStep being executed

    def planned(self, plan: Callable[[], Any]) -> Iterator[Any]:
        for step in plan():
            self.running = step
            yield step

    def applied(self, *, step: MigrationInfo, **_: Any) -> None:
        self.running = None
        directory = self.scripts.directory
        if step.is_stamp:
            targets = step.destination_revision_ids
            branch = ",".join(sorted({self.scripts.label_of(r) for r in targets}))
            revision = ",".join(targets) or "base"
            self.steps.append(Step(self.scripts.bind, branch, revision, "", "stamp"))
            return
        revision = step.up_revision_id or ""
        script = directory.get_revision(revision)
        self.steps.append(
            Step(
                self.scripts.bind,
                self.scripts.label_of(revision),
                revision,
                script.doc if script is not None else "",
                "up" if step.is_upgrade else "down",
            )
        )


@dataclass
class Rehearsal:
    """Asks :func:`run` to roll back instead of committing, and notes the tables it dropped."""

    before: set[str] = field(default_factory=set)
    dropped: list[DroppedTable] = field(default_factory=list)

    def start(self, connection: Connection) -> None:
        self.before = set(inspect(connection).get_table_names())

    def finish(self, connection: Connection, bind: str) -> None:
        gone = sorted(self.before - set(inspect(connection).get_table_names()))
        self.dropped = [DroppedTable(bind, name, 0) for name in gone]

    def count_rows(self, connection: Connection) -> None:
        """After the rollback the dropped tables are back: count what they hold."""
        preparer = connection.dialect.identifier_preparer
        self.dropped = [
            DroppedTable(t.bind, t.table, int(connection.exec_driver_sql(
                f"SELECT COUNT(*) FROM {preparer.quote(t.table)}").scalar() or 0))
            for t in self.dropped
        ]  # fmt: skip


def run(
    settings: Settings,
    scripts: BindScripts,
    direction: Direction,
    revision: str,
    *,
    rehearsal: Rehearsal | None = None,
) -> list[Step]:
    """Run one direction to ``revision`` on one bind in a single transaction.

    With ``rehearsal`` the transaction is rolled back: nothing changes.
    """
    database = Database(settings, role="admin")
    config = database.config(scripts.bind)
    progress = _Progress(scripts, direction)
    directory = scripts.directory
    planners: dict[str, Callable[[tuple[str, ...]], Any]] = {
        # Alembic's own commands pass the tuple of current heads here too.
        "up": lambda heads: directory._upgrade_revs(revision, heads),  # type: ignore[arg-type]
        "down": lambda heads: directory._downgrade_revs(revision, heads),  # type: ignore[arg-type]
        "stamp": lambda heads: directory._stamp_revs(revision, heads),
    }
    plan = planners[direction]
    before: tuple[str, ...] = ()
    try:
        with database.engine(scripts.bind).connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                _driver_sql(connection, "PRAGMA foreign_keys = OFF")
            try:
                with connection.begin() as transaction:
                    if not sqlite:  # SQLite's BEGIN IMMEDIATE already serialises writers
                        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
                    context = MigrationContext.configure(
                        connection,
                        opts={
                            "script": directory,
                            "fn": lambda heads, _ctx: progress.planned(lambda: plan(heads)),
                            "transactional_ddl": True,
                            "render_as_batch": True,
                            "version_table": VERSION_TABLE,
                            "on_version_apply": [progress.applied],
                        },
                    )
                    before = context.get_current_heads()
                    if rehearsal is not None:
                        rehearsal.start(connection)
                    with Operations.context(context):
                        context.run_migrations()
                    if rehearsal is not None:
                        rehearsal.finish(connection, config.name)
                        transaction.rollback()
                        return progress.steps
                    if sqlite:
                        _check_foreign_keys(connection, config.name)
                    if direction != "stamp":
                        grant_user_role(connection, config)
            finally:
                if sqlite:
                    _driver_sql(connection, "PRAGMA foreign_keys = ON")
                if rehearsal is not None and rehearsal.dropped:
                    rehearsal.count_rows(connection)
    except LedgerflowError:
        raise
    except (CommandError, RevisionError) as exc:
        raise MigrationError(
            f"cannot {_VERBS[direction]} database '{config.name}' ({config.describe()}) "
            f"to '{revision}': {_explain(exc)}",
            hint="nothing was changed; `ledgerflow db history` lists the revisions, "
            "and BRANCH@base is the lowest a branch goes",
        ) from None
    except Exception as exc:
        raise _failed(progress, config.name, config.describe(), before, exc) from exc
    finally:
        database.dispose()
    return progress.steps


_VERBS = {"up": "upgrade", "down": "downgrade", "stamp": "stamp"}


def _failed(
    progress: _Progress, bind: str, where: str, before: tuple[str, ...], exc: Exception
) -> MigrationError:
    step = getattr(progress.running, "revision", None)
    state = ", ".join(before) if before else "base (no revision)"
    detail = scrub(f"{type(exc).__name__}: {_first_line(exc)}")
    if step is None:
        return MigrationError(
            f"migrating database '{bind}' ({where}) failed: {detail}",
            hint=f"rolled back: the database is still at {state}",
        )
    revision = step.revision
    script = step
    return MigrationError(
        f"revision {revision} ({progress.scripts.label_of(revision)}: {script.doc}) failed on "
        f"database '{bind}' ({where}): {detail}",
        hint=f"rolled back: the database is still at {state}; fix {script.path} and run "
        "`ledgerflow db upgrade` again",
    )


def _explain(exc: BaseException) -> str:
    text = _first_line(exc)
    if text.startswith("Relative revision"):
        return "that goes below the base of the branch (fewer revisions are applied than asked)"
    if text.startswith("Can't locate revision"):
        return "unknown revision"
    return text


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _driver_sql(connection: Connection, sql: str) -> None:
    """Run a statement on the driver connection, outside any transaction SQLAlchemy tracks."""
    connection.connection.driver_connection.execute(sql)  # type: ignore[union-attr]


def _check_foreign_keys(connection: Connection, bind: str) -> None:
    rows = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if rows:
        shown = "; ".join(f"{r[0]} row {r[1]} -> {r[2]}" for r in rows[:5])
        raise MigrationError(
            f"the migration of database '{bind}' would leave {len(rows)} row(s) pointing to "
            f"missing parents ({shown})",
            hint="rolled back: fix the data or the revision, then upgrade again",
        )
