"""``ledgerflow shell``: an interactive Python session on the project's databases."""

from __future__ import annotations

import code
import importlib.util
import sys
import traceback
from typing import Any

import click

from ledgerflow import api
from ledgerflow.cli.output import cli_settings


@click.command(short_help="Python with the project's models and a session on every database.")
@click.option("-c", "--command", "source", default=None, metavar="CODE",
              help="Run this Python code with the shell's names, then exit.")
@click.option("--plain", is_flag=True, help="Python's own console even when IPython is installed.")
@click.pass_context
def shell(ctx: click.Context, source: str | None, plain: bool) -> None:
    """Open Python (IPython when installed) with the plugins' models loaded.

    Ready: db (db.session is one session routed to each model's database; nothing is kept
    until db.session.commit()), models (every model, also by its own name, with
    Model.query: User.query.all(), User.query.get(1)), Model, select and settings.
    """
    settings = cli_settings(ctx)
    with api.shell_namespace(settings) as namespace:
        if source is not None:
            _run(source, namespace)
            return
        banner = api.shell_banner(namespace)
        if not plain and importlib.util.find_spec("IPython") is not None:
            from IPython import start_ipython

            click.echo(banner)
            start_ipython(argv=["--no-banner"], user_ns=namespace)
            return
        code.interact(banner=banner, local=namespace, exitmsg="")


def _run(source: str, namespace: dict[str, Any]) -> None:
    try:
        compiled = compile(source, "<shell -c>", "exec")
    except SyntaxError as exc:
        raise click.UsageError(f"--command: {exc.msg} (line {exc.lineno})") from None
    try:
        exec(compiled, namespace)
    except Exception as exc:  # the user's code: say where, as Python would, and exit 1
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<shell -c>"]
        where = f" (line {frames[-1].lineno})" if frames else ""
        click.echo(f"Error: {type(exc).__name__}: {exc}{where}", err=True)
        sys.exit(1)
