"""The ``ledgerflow`` command: a group whose commands live one module per group.

Commands are imported only when invoked, so ``ledgerflow --help`` stays fast. Every
:class:`~ledgerflow.errors.LedgerflowError` is printed as one line (``--debug`` adds the
traceback) and exits with the error's code.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click
from click.core import ParameterSource

from ledgerflow._version import __version__
from ledgerflow.errors import (
    LedgerflowError,
    RunInterrupt,
    RunInterruptedError,
    signal_name,
    stop_signals_interrupt,
)

#: command name -> (module, attribute, one-line help). Keep the help in sync with the command.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("ledgerflow.cli.project", "init", "Create a project: ledgerflow.yml and a sample plugin."),
    "config": ("ledgerflow.cli.project", "config", "Show the effective, redacted configuration."),
    "db": ("ledgerflow.cli.db", "db", "Create and evolve the databases (migrations)."),
    "run": ("ledgerflow.cli.run", "run", "Run a task: ledgerflow run MODULE:TASK [--arg value ...]."),
    "explain": ("ledgerflow.cli.run", "explain", "Say whether a task call is cached, or why it would run."),
    "export": ("ledgerflow.cli.records", "export", "Write runs' records (or W3C PROV, RO-Crate, OpenLineage) to a file."),
    "import": ("ledgerflow.cli.records", "import_command", "Add the records of an export file to the ledger."),
    "push": ("ledgerflow.cli.records", "push", "Copy ledger records into another configured database."),
    "pull": ("ledgerflow.cli.records", "pull", "Copy ledger records from another configured database."),
    "prune": ("ledgerflow.cli.records", "prune", "Remove old runs and the records only they needed."),
    "cache": ("ledgerflow.cli.records", "cache", "List, verify or clear the shared cache of task results."),
    "runs": ("ledgerflow.cli.ledger", "runs", "List runs: status, duration, task runs by status."),
    "log": ("ledgerflow.cli.ledger", "log", "Show a run's task runs as a tree, with statuses and durations."),
    "show": ("ledgerflow.cli.ledger", "show", "Show everything about one run, task run, call, value or file."),
    "query": ("ledgerflow.cli.ledger", "query", "Find task runs by task, status, tag, file, time or run."),
    "tag": ("ledgerflow.cli.ledger", "tag", "Add (or --remove) KEY=VALUE tags on a record."),
    "dataflow": ("ledgerflow.cli.ledger", "dataflow", "How a value or file was derived (or, --downstream, what came of it)."),
    "shell": ("ledgerflow.cli.shell", "shell", "Python with the project's models and a session on every database."),
    "dashboard": ("ledgerflow.cli.dashboard", "dashboard", "Serve a web dashboard of runs, graphs, timelines, dataflow and the cache."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module, attr, _ = entry
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="LEDGERFLOW_CONFIG",
    help="Path of ledgerflow.yml (default: $LEDGERFLOW_CONFIG, else found upwards from here).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="ledgerflow")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """ledgerflow: data pipelines whose database is first-class."""
    ctx.ensure_object(dict)
    if ctx.get_parameter_source("config_path") is ParameterSource.ENVIRONMENT:
        config_path = None  # found again from $LEDGERFLOW_CONFIG, so errors name the variable
    ctx.obj["config_path"] = config_path
    ctx.obj["debug"] = debug


def _stop_signal(exc: BaseException) -> int | None:
    """The SIGTERM/SIGHUP behind a KeyboardInterrupt (click turns it into Abort), if any."""
    for cause in (exc, exc.__cause__, exc.__context__):
        signum = getattr(cause, "signum", None)
        if isinstance(cause, RunInterrupt) and signum is not None:
            return int(signum)
    return None


def _command(argv: list[str] | None) -> Any:
    """Run the command line; a stop signal (SIGTERM, SIGHUP) becomes one error line and
    exit code 128 + its number, like Ctrl-C for a run (the ``run`` command says more)."""
    try:
        return cli.main(args=argv, prog_name="ledgerflow", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        signum = _stop_signal(exc)
        if signum is None:
            raise
        raise RunInterruptedError(f"ledgerflow interrupted by {signal_name(signum)}",
                                  signum=signum) from None


def main(argv: list[str] | None = None) -> Any:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    stop_signals_interrupt()  # for the life of the process: a late signal too exits 128+N
    try:
        return _command(argv)
    except LedgerflowError as exc:
        if debug:
            traceback.print_exc()
            if exc.hint and "--debug" in exc.hint:
                exc.hint = None  # the traceback is printed above
        click.echo(f"Error: {exc.render()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
