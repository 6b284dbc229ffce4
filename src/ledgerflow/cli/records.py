"""``ledgerflow export/import/push/pull/prune/cache``: moving and trimming ledger records.

Thin wrappers over :mod:`ledgerflow.provenance.exchange`, ``.prov``, ``.prune`` and
``.cache``: parse the options, call the library, print the answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ledgerflow.cli.output import cli_settings, echo, print_json, print_table
from ledgerflow.errors import UsageError

_SINCE_HELP = "Only runs started within this span (30m, 12h, 2d, 1w) or since a date (2026-11-01)."


def _since(value: str | None, option: str = "since") -> datetime | None:
    if value is None:
        return None
    from ledgerflow.provenance.query import parse_time

    return parse_time(value, option=option)


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
        print_json({"added": report.added, "skipped": report.skipped, "updated": report.updated,
                    "total_added": report.total_added, "total_skipped": report.total_skipped,
                    "total_updated": report.total_updated})
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


@click.command(short_help="Write runs' records (or a value's PROV-JSON) to a file.")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--since", default=None, help=_SINCE_HELP)
@click.option("-o", "--output", "output", default="-", show_default=True, metavar="FILE",
              help="File to write; - writes to stdout.")
@click.option("--prov", "prov_target", default=None, metavar="VALUE|PATH",
              help="Write the W3C PROV-JSON provenance of one value (id or prefix) or file instead.")
@click.pass_context
def export(ctx: click.Context, runs: Sequence[str], since: str | None, output: str,
           prov_target: str | None) -> None:
    """Write every record the RUNs reach as JSON lines (all runs when none is given).

    Content-addressed records are written once; values kept in the value store carry their
    bytes. Load the file elsewhere with `ledgerflow import`.
    """
    settings = cli_settings(ctx)
    to_stdout = output == "-"
    if prov_target is not None:
        if runs or since:
            raise UsageError("--prov exports one value's provenance: give no RUN and no --since")
        from ledgerflow.provenance.prov import prov_document

        document = prov_document(settings, prov_target)
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        if to_stdout:
            click.echo(text, nl=False)
        else:
            _write_text(Path(output), text)
        _status(f"Wrote the PROV-JSON provenance of {prov_target} to {output}: "
                f"{len(document.get('entity', {}))} entities, "
                f"{len(document.get('activity', {}))} activities.", to_stdout)
        return
    from ledgerflow.provenance.exchange import export as export_records

    with _progress("exporting") as progress:
        count = export_records(settings, runs or None, _since(since), output, progress=progress)
    _status(f"Exported {count} record(s) to {'stdout' if to_stdout else output}.", to_stdout)


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


@click.command("import", short_help="Add the records of an export file to the ledger.")
@click.argument("path", metavar="FILE.jsonl")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def import_command(ctx: click.Context, path: str, as_json: bool) -> None:
    """Add the records of FILE.jsonl (- for stdin) that the ledger lacks.

    Idempotent: records already there are skipped. A corrupt line stops the import with its
    line number, and nothing is imported.
    """
    from ledgerflow.provenance.exchange import import_

    settings = cli_settings(ctx)
    with _progress("importing") as progress:
        report = import_(settings, path, progress=progress)
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
        from ledgerflow.provenance import exchange

        settings = cli_settings(ctx)
        with _progress(f"{direction}ing") as progress:
            report = getattr(exchange, direction)(
                settings, bind, runs=runs or None, since=_since(since), progress=progress
            )
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def prune(ctx: click.Context, older_than: str, status: str | None, keep_cache: bool,
          dry_run: bool, as_json: bool) -> None:
    """Remove runs started before --older-than, with their task runs, logs and tags, then
    every value, call, file... that no kept run or cache entry needs."""
    from ledgerflow.provenance.prune import prune as prune_ledger

    settings = cli_settings(ctx)
    moment = _since(older_than, "older-than")
    assert moment is not None
    report = prune_ledger(settings, datetime.now(UTC) - moment, status=status,
                          keep_cache=keep_cache, dry_run=dry_run)
    if as_json:
        print_json({"cutoff": report.cutoff, "dry_run": report.dry_run, "removed": report.removed,
                    "runs": report.run_ids, "reaped": report.reaped, "total": report.total})
        return
    if report.reaped:
        echo(f"Marked {len(report.reaped)} dead run(s) interrupted (no heartbeat).", style="yellow")
    verb = "Would remove" if dry_run else "Removed"
    rows = [(kind, n) for kind, n in report.removed.items() if n]
    if rows:
        print_table(("kind", "would remove" if dry_run else "removed"), rows)
    echo(f"{verb} {len(report.run_ids)} run(s) started before {report.cutoff:%Y-%m-%d %H:%M} "
         f"UTC and {report.total} record(s) in all.", style="yellow" if dry_run else "green")


@click.group(short_help="List or clear the shared cache of task results.")
def cache() -> None:
    """The shared cache: entries and hit/miss statistics per task, and clearing it."""


@cache.command("list", short_help="Cache entries and hit/miss statistics per task.")
@click.option("--task", default=None, help="Only this task (name, dotted name or glob).")
@click.option("--entries", "limit", default=20, show_default=True,
              help="With --task: how many of its most recent entries to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def cache_list(ctx: click.Context, task: str | None, limit: int, as_json: bool) -> None:
    """Entries per task, with hits (task runs served from the cache) and misses (executed)."""
    from ledgerflow.provenance import cache as lib

    settings = cli_settings(ctx)
    stats = lib.cache_list(settings, task)
    entries = lib.cache_entries(settings, task, limit=limit) if task else []
    if as_json:
        print_json({"tasks": [{**_fields(s), "hit_rate": s.hit_rate} for s in stats],
                    "entries": entries})
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


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(n)


@cache.command("clear", short_help="Remove cache entries (of one task).")
@click.option("--task", default=None, help="Only this task's entries (name, dotted name or glob).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def cache_clear(ctx: click.Context, task: str | None, yes: bool) -> None:
    """Remove cache entries, so the next runs execute those calls again."""
    from ledgerflow.provenance import cache as lib

    settings = cli_settings(ctx)
    what = f"the cache entries of task '{task}'" if task else "every cache entry"
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to remove {what} without confirmation",
                             hint="pass --yes when not running on a terminal")
        click.confirm(f"Remove {what}?", abort=True)
    count = lib.cache_clear(settings, task)
    echo(f"Removed {count} cache entr{'y' if count == 1 else 'ies'}.", style="green")
