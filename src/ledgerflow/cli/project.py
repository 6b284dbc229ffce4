"""``ledgerflow init`` and ``ledgerflow config``: creating a project and showing its settings."""

from __future__ import annotations

import click

from ledgerflow.cli.output import cli_settings, echo, print_json
from ledgerflow.project import DEFAULT_PLUGIN, init_project


@click.command(short_help="Create a project: ledgerflow.yml and a sample plugin.")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option(
    "--plugin", default=DEFAULT_PLUGIN, show_default=True,
    help="Dotted name of the sample plugin package to create (not the name of a standard "
    "library or installed module).",
)
def init(directory: str, plugin: str) -> None:
    """Create a project in DIRECTORY (default: here).

    Writes ledgerflow.yml (a SQLite ledger, ledgerflow.db, next to it) and a plugin
    package with models.py and, in migrations/, the revision that creates its table.
    Never overwrites a project.
    """
    project = init_project(directory, plugin)
    echo(f"Created project in {project.root}", style="green")
    for path in project.files:
        echo(f"  {path.relative_to(project.root)}{'/' if path.is_dir() else ''}")
    echo()
    echo(project.next_steps())


@click.group(short_help="Show the effective, redacted configuration.")
def config() -> None:
    """Inspect the project's configuration."""


@config.command(short_help="Print the effective configuration, passwords masked.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration (includes and ${VAR} resolved, passwords masked)."""
    settings = cli_settings(ctx)
    if as_json:
        print_json({"path": settings.path, **settings.redacted})
        return
    click.echo(f"# {settings.path}")
    click.echo(settings.redacted_yaml(), nl=False)
