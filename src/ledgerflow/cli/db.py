"""``ledgerflow db``: create and evolve the databases (thin wrappers over ledgerflow.api.database)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from ledgerflow.cli.output import cli_settings, confirm, echo, print_json, print_table
from ledgerflow.config import Settings

_BIND_HELP = "Only this database of ledgerflow.yml (default: every database)."
_ONE_BIND_HELP = "Database of ledgerflow.yml to work on."


def _migrations() -> Any:
    from ledgerflow.api import database  # Alembic is imported only when a command runs

    return database


def _progress(settings: Settings, bind: str | None, text: str) -> None:
    """Say what a long command is about to do (unknown binds are left for the library to report)."""
    if bind is None or bind in settings.databases:
        echo(text.replace("{where}", _where(settings, bind)))


def _where(settings: Settings, bind: str | None) -> str:
    names = [bind] if bind else sorted(settings.databases)
    described = []
    for name in names:
        db = settings.databases.get(name)
        described.append(f"'{name}' ({db.describe()})" if db else f"'{name}'")
    return ", ".join(described)


_ARROWS = {"up": "->", "down": "<-", "stamp": "=="}
_DONE = {"upgrade": "applied", "downgrade": "reverted"}


def _print_steps(steps: Iterable[Any], verb: str, *, dry_run: bool = False) -> int:
    count = 0
    for step in steps:
        count += 1
        arrow = _ARROWS.get(step.direction, "  ")
        echo(f"  {arrow} [{step.bind}] {step.branch} {step.revision}  {step.message}".rstrip())
    plural = "s" if count != 1 else ""
    if count == 0:
        echo(f"Nothing to {verb}: already there.", style="green")
    elif dry_run:
        echo(f"Dry run: {count} migration{plural} would be {_DONE[verb]}; nothing was changed.")
    else:
        echo(f"Done: {count} migration{plural} {_DONE[verb]}.", style="green")
    return count


def _show(path: Path | str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.group(short_help="Create and evolve the databases (migrations).")
def db() -> None:
    """Create and evolve the project's databases: the ledger tables and the plugins' tables."""


@db.command(short_help="Apply migrations up to REVISION (default: heads).")
@click.argument("revision", default="heads")
@click.option("--bind", default=None, help=_BIND_HELP)
@click.pass_context
def upgrade(ctx: click.Context, revision: str, bind: str | None) -> None:
    """Apply migrations up to REVISION (default: heads, the latest of every branch)."""
    settings = cli_settings(ctx)
    _progress(settings, bind, f"Upgrading {{where}} to {revision} ...")
    _print_steps(_migrations().upgrade(settings, revision, bind=bind), "upgrade")


@db.command(short_help="Revert migrations down to REVISION (e.g. BRANCH@base).")
@click.argument("revision")
@click.option("--bind", default="default", show_default=True, help=_ONE_BIND_HELP)
@click.option("--yes", is_flag=True, help="Drop tables that hold rows without asking.")
@click.option("--dry-run", is_flag=True,
              help="Show the migrations that would be reverted and the tables (with their "
              "rows) that would be dropped; change nothing.")
@click.pass_context
def downgrade(ctx: click.Context, revision: str, bind: str, yes: bool, dry_run: bool) -> None:
    """Revert migrations down to REVISION: a revision id, -1, or PLUGIN@base.

    When the downgrade would drop tables that hold rows, it asks first on a terminal and
    needs --yes elsewhere; --dry-run shows what would go, with row counts.
    """
    settings = cli_settings(ctx)
    database = _migrations()
    plan = database.plan_downgrade(settings, revision, bind=bind)
    if dry_run:
        _print_steps(plan.steps, "downgrade", dry_run=True)
        for table in plan.dropped:
            echo(f"  would drop table {table.table} ({table.rows} row{'s' if table.rows != 1 else ''})",
                 style="red" if table.rows else None)
        return
    if plan.loses_rows:
        full = [t for t in plan.dropped if t.rows]
        listed = ", ".join(f"{t.table} ({t.rows} rows)" for t in full)
        confirm(f"drop {len(full)} table{'s' if len(full) != 1 else ''} holding rows in "
                f"database '{bind}': {listed}", yes=yes)
    _progress(settings, bind, f"Downgrading {{where}} to {revision} ...")
    _print_steps(database.downgrade(settings, revision, bind=bind), "downgrade")


@db.command("make-migrations", short_help="Write a plugin's migration from its models.")
@click.option("--plugin", "plugin", required=True, help="Dotted name of the plugin package.")
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.option("--bind", default="default", show_default=True, help=_ONE_BIND_HELP)
@click.option(
    "--no-renames", is_flag=True,
    help="Write a disappeared and an appeared column as drop + add, not as a rename.",
)
@click.pass_context
def make_migrations(
    ctx: click.Context, plugin: str, message: str, bind: str, no_renames: bool
) -> None:
    """Compare PLUGIN's models with the database and write the migration that bridges them."""
    settings = cli_settings(ctx)
    _progress(settings, bind, f"Comparing the models of {plugin} with {{where}} ...")
    new = _migrations().make_migrations(
        settings, plugin, message, bind=bind, renames=not no_renames
    )
    if new.empty:
        echo(f"No changes: the models of {plugin} match the database; nothing written.")
        return
    echo(f"Wrote {_show(new.path)} (revision {new.revision}, branch {new.branch})", style="green")
    for operation in new.operations:
        echo(f"  - {operation}")
    for rename in new.renames:
        what = rename.removesuffix(" (renamed, data kept)")
        echo(f"  renamed {what} (data kept)", style="cyan")
    for warning in new.warnings:
        click.echo(f"Warning: {warning}", err=True)
    echo("Review it, then apply it with: ledgerflow db upgrade")


def _revision_rows(revisions: Iterable[Any]) -> list[tuple[Any, ...]]:
    rows = []
    for rev in revisions:
        state = " ".join(s for s, on in (("head", rev.is_head), ("current", rev.is_current)) if on)
        rows.append(
            (rev.bind, rev.branch, rev.revision, rev.down_revision or "-", state, rev.message)
        )
    return rows


@db.command(short_help="List the migrations of every branch.")
@click.option("--bind", default=None, help=_BIND_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def history(ctx: click.Context, bind: str | None, as_json: bool) -> None:
    """List the migrations known for each database, newest first within each branch."""
    revisions = _migrations().history(cli_settings(ctx), bind=bind)
    if as_json:
        print_json(revisions)
        return
    if not revisions:
        echo("No migrations.")
        return
    columns = ("bind", "branch", "revision", "down revision", "status", "message")
    print_table(columns, _revision_rows(revisions))


@db.command(short_help="Show the revision each database is at.")
@click.option("--bind", default=None, help=_BIND_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def current(ctx: click.Context, bind: str | None, as_json: bool) -> None:
    """Show the revision each database (and each branch in it) is at."""
    by_bind = _migrations().current(cli_settings(ctx), bind=bind)
    if as_json:
        print_json(by_bind)
        return
    rows = []
    for name in sorted(by_bind):
        revisions = by_bind[name]
        if not revisions:
            rows.append((name, "-", "(no migration applied)", "", ""))
        for rev in revisions:
            state = "head" if rev.is_head else "behind"
            rows.append((name, rev.branch, rev.revision, state, rev.message))
    print_table(("bind", "branch", "revision", "status", "message"), rows)


@db.command(short_help="Exit 1 with a diff when models and database differ.")
@click.option("--bind", default=None, help=_BIND_HELP)
@click.option("--json", "as_json", is_flag=True,
              help='Print {"in_sync": bool, "differences": [...]} (the exit code is the same).')
@click.pass_context
def check(ctx: click.Context, bind: str | None, as_json: bool) -> None:
    """Compare the models and migrations with the database; exit 1 when they differ."""
    settings = cli_settings(ctx)
    differences = _migrations().check(settings, bind=bind)
    if as_json:
        binds = [bind] if bind else sorted(settings.databases)
        print_json({"in_sync": not differences, "binds": binds, "differences": differences})
        if differences:
            raise SystemExit(1)
        return
    if not differences:
        echo(f"{_where(settings, bind)}: in sync with the models.", style="green")
        return
    echo(f"{_where(settings, bind)}: {len(differences)} difference(s):", style="red")
    for line in differences:
        echo(f"  {line}")
    echo(
        "Fix: `ledgerflow db upgrade` applies pending migrations; after changing models, "
        "`ledgerflow db make-migrations --plugin PLUGIN -m MESSAGE` writes a new one"
    )
    raise SystemExit(1)  # not ctx.exit: main() runs click outside standalone mode


@db.command(short_help="Record REVISION as applied without running migrations.")
@click.argument("revision")
@click.option("--bind", default="default", show_default=True, help=_ONE_BIND_HELP)
@click.pass_context
def stamp(ctx: click.Context, revision: str, bind: str) -> None:
    """Record REVISION as the database's revision without running any migration."""
    settings = cli_settings(ctx)
    _migrations().stamp(settings, revision, bind=bind)
    echo(f"Stamped {_where(settings, bind)} at {revision}.", style="green")
