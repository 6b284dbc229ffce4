"""``ledgerflow export/import/push/pull/prune/cache``: moving and trimming ledger records.

Each command parses its options, calls :mod:`ledgerflow.api` and prints the answer (or,
with ``--json``, the result's documented ``to_json()`` shape). Destructive commands ask
first (``--yes`` when not on a terminal) and offer ``--dry-run``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ledgerflow import api
from ledgerflow.cli.output import cli_settings, confirm, echo, print_json, print_table
from ledgerflow.errors import UsageError

_SINCE_HELP = "Only runs started within this span (30m, 12h, 2d, 1w) or since a date (2026-11-01)."

@contextmanager
def _progress(label: str) -> Iterator[Callable[[int], None] | None]:
    """A live record counter on stderr when it is a terminal, else nothing."""
    if not sys.stderr.isatty():
        yield None
        return
    err = Console(file=sys.stderr)
    columns = (SpinnerColumn(), TextColumn("{task.description} {task.completed:,} records"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done: bar.update(task, completed=done)


def _status(message: str, to_stderr: bool) -> None:
    if to_stderr:
        click.echo(message, err=True)
    else:
        echo(message, style="green")


def _print_report(report: Any, verb: str, where: str, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    rows = [
        (kind, report.added[kind], report.skipped[kind], report.updated[kind])
        for kind in report.added
        if report.added[kind] or report.skipped[kind] or report.updated[kind]
    ]
    if rows:
        print_table(("kind", "added", "skipped", "updated"), rows)
    echo(
        f"{verb} {report.total_added} record(s) into {where}; {report.total_skipped} already "
        f"there" + (f"; {report.total_updated} updated" if report.total_updated else "") + ".",
        style="green",
    )


@click.command(short_help="Write runs' records (or W3C PROV, RO-Crate, OpenLineage) to a file.")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--since", default=None, help=_SINCE_HELP)
@click.option("-o", "--output", "output", default="-", show_default=True, metavar="FILE",
              help="File to write (whole or not at all); - writes to stdout.")
@click.option("--prov", "prov_target", default=None, metavar="VALUE|PATH",
              help="Write the W3C PROV provenance of one value (id or prefix) or file instead.")
@click.option("--prov-format", default="json", show_default=True, metavar="json|provn|xml|turtle",
              help="PROV-JSON, PROV-N, PROV-XML or PROV-O in Turtle (with --prov).")
@click.option("--ro-crate", "crate_run", default=None, metavar="RUN",
              help="Write one run as a Workflow Run RO-Crate (Provenance Run Crate, a zip) instead.")
@click.option("--openlineage", "openlineage", is_flag=True,
              help="Write the RUNs' OpenLineage events (JSON lines, all runs when none is given) instead.")
@click.option("--send", is_flag=True,
              help="With --openlineage: send the events through the configured transport instead.")
@click.option("--include-files", is_flag=True,
              help="Embed the run's files in the crate (those still holding their recorded content).")
@click.pass_context
def export(ctx: click.Context, runs: Sequence[str], since: str | None, output: str,
           prov_target: str | None, prov_format: str, crate_run: str | None,
           openlineage: bool, send: bool, include_files: bool) -> None:
    """Write every record the RUNs reach as JSON lines (all runs when none is given).

    Content-addressed records are written once; values kept in the value store carry their
    bytes. Load the file elsewhere with `ledgerflow import`. Instead, --prov writes how one
    value or file was made as W3C PROV, --ro-crate one run as a Workflow Run RO-Crate, and
    --openlineage the RUNs' OpenLineage events (the standards extra; docs/provenance.md).
    """
    settings = cli_settings(ctx)
    to_stdout = output == "-"
    if (prov_target is not None) + (crate_run is not None) + openlineage > 1:
        raise UsageError("give one of --prov, --ro-crate and --openlineage")
    if include_files and crate_run is None:
        raise UsageError("--include-files goes with --ro-crate RUN")
    if crate_run is not None:
        if runs or since:
            raise UsageError("--ro-crate exports one run: give no other RUN and no --since")
        crate = api.export_ro_crate(settings, crate_run, output=output, include_files=include_files)
        _status(f"Wrote run {crate.run[:12]} as a Provenance Run Crate to {crate.output}: "
                f"{crate.task_runs} task runs, {crate.files} files ({crate.embedded} embedded).",
                to_stdout)
        return
    if openlineage:
        if since:
            raise UsageError("--openlineage replays the RUNs given (or every run): no --since")
        if send and not to_stdout:
            raise UsageError("--send sends the events: give no -o")
        lineage = api.export_openlineage(settings, runs or None, output=output, send=send)
        verb = "Sent" if send else "Wrote"
        _status(f"{verb} {lineage.events} OpenLineage event(s) of {len(lineage.runs)} run(s) to "
                f"{lineage.output}.", to_stdout and not send)
        return
    if send:
        raise UsageError("--send goes with --openlineage")
    if prov_target is not None:
        if runs or since:
            raise UsageError("--prov exports one value's provenance: give no RUN and no --since")
        done = api.export_prov(settings, prov_target, format=prov_format, output=output)
        _status(f"Wrote the {done.label} provenance of {prov_target} to {done.output}: "
                f"{done.entities} entities, {done.activities} activities.", to_stdout)
        return
    if prov_format != "json":
        raise UsageError("--prov-format goes with --prov VALUE|PATH")
    with _progress("exporting") as progress:
        count = api.export(settings, runs or None, since=since, output=output, progress=progress)
    _status(f"Exported {count} record(s) to {'stdout' if to_stdout else output}.", to_stdout)


@click.command("import", short_help="Add the records of an export file to the ledger.")
@click.argument("path", metavar="FILE.jsonl")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def import_command(ctx: click.Context, path: str, as_json: bool) -> None:
    """Add the records of FILE.jsonl (- for stdin) that the ledger lacks.

    Idempotent: records already there are skipped. A corrupt line stops the import with its
    line number, and nothing is imported.
    """
    settings = cli_settings(ctx)
    with _progress("importing") as progress:
        report = api.import_(settings, path, progress=progress)
    _print_report(report, "Imported", "the ledger", as_json)


def _sync_command(direction: str) -> click.Command:
    towards = "into" if direction == "push" else "from"

    @click.command(direction, short_help=f"Copy ledger records {towards} another configured database.")
    @click.argument("bind")
    @click.argument("runs", nargs=-1, metavar="[RUN]...")
    @click.option("--since", default=None, help=_SINCE_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def command(ctx: click.Context, bind: str, runs: Sequence[str], since: str | None,
                as_json: bool) -> None:
        settings = cli_settings(ctx)
        with _progress(f"{direction}ing") as progress:
            copy = api.push if direction == "push" else api.pull
            report = copy(settings, bind, runs or None, since=since, progress=progress)
        target = f"database '{bind}'" if direction == "push" else "the default database"
        _print_report(report, "Copied", target, as_json)

    source, target = ("the default ledger", "the database BIND") if direction == "push" else (
        "the database BIND", "the default ledger")
    command.help = (
        f"Copy the records of {source} (every run, or the RUNs given) into {target}.\n\n"
        "BIND is a database of ledgerflow.yml holding an up-to-date ledger. Idempotent like "
        "`ledgerflow import`: records already there are skipped."
    )
    return command


push = _sync_command("push")
pull = _sync_command("pull")


@click.command(short_help="Remove old runs and the records only they needed.")
@click.option("--older-than", "older_than", required=True, metavar="SPAN",
              help="Remove runs started before this span ago (30d, 12h, 1w) or this date.")
@click.option("--status", default=None, help="Only runs with this status (done, failed, interrupted).")
@click.option("--keep-cache", is_flag=True, help="Keep the cache entries of removed runs.")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed off a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def prune(ctx: click.Context, older_than: str, status: str | None, keep_cache: bool,
          dry_run: bool, yes: bool, as_json: bool) -> None:
    """Remove runs started before --older-than, with their task runs, logs and tags, then
    every value, call, file... that no kept run or cache entry needs.

    Asks first, showing how many runs and records would go (--yes skips the question, and
    is required when not on a terminal); --dry-run only reports.
    """
    settings = cli_settings(ctx)

    def plan() -> str:
        planned = api.prune(settings, older_than, status=status, keep_cache=keep_cache, dry_run=True)
        return (f"{len(planned.run_ids)} run(s) started before {planned.cutoff:%Y-%m-%d %H:%M} "
                f"UTC and {planned.total} record(s) in all would go")

    confirm("prune the ledger", yes=yes or dry_run, details=plan)
    report = api.prune(settings, older_than, status=status, keep_cache=keep_cache, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
        return
    if report.reaped:
        echo(f"Marked {len(report.reaped)} dead run(s) interrupted (no heartbeat).", style="yellow")
    verb = "Would remove" if dry_run else "Removed"
    rows = [(kind, n) for kind, n in report.removed.items() if n]
    if rows:
        print_table(("kind", "would remove" if dry_run else "removed"), rows)
    echo(f"{verb} {len(report.run_ids)} run(s) started before {report.cutoff:%Y-%m-%d %H:%M} "
         f"UTC and {report.total} record(s) in all.", style="yellow" if dry_run else "green")


@click.group(short_help="List, verify or clear the shared cache of task results.")
def cache() -> None:
    """The shared cache: entries and hit/miss statistics per task, checking it, clearing it."""


@cache.command("list", short_help="Cache entries and hit/miss statistics per task.")
@click.option("--task", default=None, help="Only this task (name, dotted name or glob).")
@click.option("--entries", "limit", default=20, show_default=True,
              help="With --task: how many of its most recent entries to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def cache_list(ctx: click.Context, task: str | None, limit: int, as_json: bool) -> None:
    """Entries per task, with hits (task runs served from the cache) and misses (executed)."""
    listing = api.cache_list(cli_settings(ctx), task, entries=limit)
    stats, entries = listing.tasks, listing.entries
    if as_json:
        print_json(listing.to_json())
        return
    if not stats:
        echo("The cache is empty and no task has run yet.")
        return
    print_table(
        ("task", "entries", "size", "hits", "misses", "hit rate"),
        [(s.task, s.entries, _size(s.size), s.hits, s.misses,
          "-" if s.hit_rate is None else f"{s.hit_rate:.0%}") for s in stats],
        status_column=None,
    )
    if entries:
        print_table(
            ("args", "value", "preview", "run", "created"),
            [(e.args_hash[:12], e.value_hash[:12], e.preview, (e.run_id or "-")[:8],
              f"{e.created_at:%Y-%m-%d %H:%M}") for e in entries],
            title=f"latest entries of {task}", status_column=None,
        )


@cache.command("verify", short_help="Check every cache entry and value (--repair: remove damaged ones).")
@click.option("--repair", is_flag=True,
              help="Remove what is damaged, as the admin: inconsistent cache entries, and the "
              "bytes of values that fail their check (inline and in the value store); the "
              "next run computes those calls once. Without it, only shows what would go.")
@click.option("--drop-untrusted", is_flag=True,
              help="Also drop pickles whose writer is not in cache.trust (with --repair).")
@click.option("--yes", is_flag=True,
              help="Repair without asking first (needed off a terminal with --repair).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"ok", "entries", "values", "problems": [...], "repair": {...}} '
              "(same exit code).")
@click.pass_context
def cache_verify(ctx: click.Context, repair: bool, drop_untrusted: bool, yes: bool,
                 as_json: bool) -> None:
    """Check every cache entry (consistent with the call it claims) and every value
    (reachable, bytes that hash to its address, pickles intact and from a trusted writer).
    Prints one line per problem and exits 6 when there is any.

    Without --repair nothing changes: the last line says what --repair would remove. With
    --repair (an admin operation: on PostgreSQL it connects as the admin role), inconsistent
    cache entries are deleted and damaged values lose their bytes, so the next run computes
    those calls once and records results later runs use; runs and task runs stay.
    --drop-untrusted also drops pickles by writers not in cache.trust. The exit code is
    still 6 after a repair: it says what was found. --repair asks first (--yes skips the
    question, and is required when not on a terminal).
    """
    settings = cli_settings(ctx)

    def plan() -> str:
        planned = api.cache_repair(settings, dry_run=True, drop_untrusted=drop_untrusted)
        return (f"{len(planned.entries)} cache entr{'y' if len(planned.entries) == 1 else 'ies'} "
                f"and the bytes of {len(planned.values)} value(s) would go")

    confirm("repair the cache", yes=yes or not repair, details=plan, preview="leave out --repair")
    report = api.cache_repair(settings, dry_run=not repair, drop_untrusted=drop_untrusted)
    verified = report.verified
    if as_json:
        print_json(report.to_json())
    else:
        for problem in verified.problems:
            echo(problem.line(), style="red")
        summary = (f"Checked {verified.entries} cache entr{'y' if verified.entries == 1 else 'ies'} "
                   f"and {verified.values} value(s): ")
        if verified.ok:
            echo(summary + "no problem.", style="green")
        else:
            echo(summary + f"{len(verified.problems)} problem(s); runs compute those results "
                 "again (an admin can remove the rows).", style="yellow")
            what = (f"{len(report.entries)} cache entr{'y' if len(report.entries) == 1 else 'ies'} "
                    f"and the bytes of {len(report.values)} value(s)")
            if report.dry_run:
                echo(f"--repair would remove {what}"
                     + (" (--drop-untrusted: also the untrusted pickles)"
                        if report.untrusted_left else "") + ".")
            else:
                echo(f"Removed {what} ({report.blobs} object(s) of the value store); the next "
                     "run computes those calls again.", style="green")
    if not verified.ok:
        raise SystemExit(6)  # not ctx.exit: main() runs click outside standalone mode


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(n)


@cache.command("clear", short_help="Remove cache entries (of one task).")
@click.option("--task", default=None, help="Only this task's entries (name, dotted name or glob).")
@click.option("--dry-run", is_flag=True, help="Report how many entries would go; remove nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed off a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def cache_clear(ctx: click.Context, task: str | None, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Remove cache entries, so the next runs execute those calls again.

    Asks first (--yes skips the question, and is required when not on a terminal);
    --dry-run only counts.
    """
    settings = cli_settings(ctx)

    def plan() -> str:
        n = api.cache_clear(settings, task, dry_run=True).removed
        return f"{n} cache entr{'y' if n == 1 else 'ies'}" + (f" of task '{task}'" if task else "")

    confirm("clear the cache", yes=yes or dry_run, details=plan)
    report = api.cache_clear(settings, task, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
        return
    n = report.removed
    echo(f"{'Would remove' if dry_run else 'Removed'} {n} cache entr{'y' if n == 1 else 'ies'}.",
         style="yellow" if dry_run else "green")
