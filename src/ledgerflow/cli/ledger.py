"""``ledgerflow runs/log/show/query/tag/dataflow``: reading the ledger.

Each command parses its options, calls :mod:`ledgerflow.api` and prints a table (or, with
``--json``, the result's documented ``to_json()`` shape, the same the dashboard serves).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import click
from rich.text import Text

from ledgerflow import api
from ledgerflow.api import LOG_GROUP_AT, RUN_STATUSES, TASK_RUN_STATUSES
from ledgerflow.cli.output import cli_settings, console, echo, print_json, print_table, status_text

_SINCE = "Started within this span (30m, 12h, 2d, 1w) or since a date/time (2026-11-01)."
_UNTIL = "Started before this span ago or this date/time."
_JSON = "Print JSON (stable, documented in docs/provenance.md)."
_FORMATS = ("text", *api.PICTURE_FORMATS)
_FORMAT = "text, or a graph to paste elsewhere: Graphviz DOT (dot) or a Mermaid flowchart (mermaid)."


def _one_output(as_json: bool, fmt: str) -> None:
    if as_json and fmt != "text":
        raise click.UsageError(f"--json and --format {fmt} both choose the output: pass one of them")


PREVIEW_WIDTH = 70
#: Task runs ``log`` shows on their own line unless told otherwise.
LOG_LIMIT = 200


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[s]} {s}" for s in TASK_RUN_STATUSES if counts.get(s))


def _cut(text: str, width: int = PREVIEW_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _entry(run: Any) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in (run.arguments or {}).items())
    return _cut(f"{run.entry_task}({shown})")


# -- runs -----------------------------------------------------------------------------------


@click.command(short_help="List runs: status, duration, task runs by status.")
@click.option("--status", help=f"Only runs with these statuses (comma separated): {', '.join(RUN_STATUSES)}.")
@click.option("--task", help="Only runs whose entry task, or one of whose task runs, has this name.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only runs with this tag (repeatable).")
@click.option("--since", help=_SINCE)
@click.option("--until", help=_UNTIL)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0), help="Rows to show.")
@click.option("--offset", default=0, type=click.IntRange(min=0), help="Rows to skip (pages).")
@click.option("--json", "as_json", is_flag=True, help=_JSON)
@click.pass_context
def runs(ctx: click.Context, status: str | None, task: str | None, tags: tuple[str, ...],
         since: str | None, until: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List runs, newest first, with their task runs counted by status."""
    found = api.runs(cli_settings(ctx), status=status, task=task, tag=list(tags) or None,
                     since=since, until=until, limit=limit, offset=offset)
    if as_json:
        print_json([run.to_json() for run in found])
        return
    if not found:
        echo("No runs match.")
        return
    print_table(
        ("id", "status", "started", "duration", "task runs", "entry"),
        [(r.short, r.status, _when(r.started_at), api.format_duration(r.duration), _counts(r.counts), _entry(r))
         for r in found],
    )


# -- log ------------------------------------------------------------------------------------


def _task_label(tr: Any) -> Text:
    label = Text()
    label.append(f"{tr.short} ", style="bright_black")
    label.append(_cut(tr.call_display(), 60))
    label.append("  ")
    label.append_text(status_text(tr.status))
    if tr.duration is not None:
        label.append(f"  {api.format_duration(tr.duration)}")
    if tr.cached_from:
        label.append(f"  (cache of run {tr.cached_from[:8]})", style="cyan")
    if tr.attempt > 1:
        label.append(f"  attempt {tr.attempt}")
    if tr.exception_type:
        label.append(f"  {tr.exception_type}: {_cut(tr.exception_message or '', 50)}", style="red")
    return label


def _group_label(group: Any) -> Text:
    label = Text()
    label.append(f"{group.task_name} × {group.count:,}", style="bold")
    label.append(f"  ({_counts(group.counts)})")
    if group.descendants:
        label.append(f"  +{group.descendants:,} task run(s) below", style="bright_black")
    return label


def _tree_lines(top: Sequence[Any]) -> Iterator[Text]:
    """The lines of a log tree (one Text each, drawn with ├── └── │), depth first."""
    stack: list[tuple[Any, str, bool]] = [(e, "", i == len(top) - 1) for i, e in reversed(list(enumerate(top)))]
    while stack:
        entry, prefix, last = stack.pop()
        line = Text(prefix + ("└── " if last else "├── "), style="bright_black")
        below_prefix = prefix + ("    " if last else "│   ")
        if isinstance(entry, api.LogEntry):
            line.append_text(_task_label(entry.task_run))
            below: list[Any] = list(entry.children)
            if entry.hidden:
                below.append(Text(f"... {entry.hidden:,} more task run(s) below", style="bright_black"))
        elif isinstance(entry, Text):
            line.append_text(entry)
            below = []
        else:
            line.append_text(_group_label(entry))
            below = list(entry.members)
        yield line
        stack.extend((b, below_prefix, i == len(below) - 1) for i, b in reversed(list(enumerate(below))))


@click.command(short_help="Show a run's task runs as a tree, with statuses and durations.")
@click.argument("run", required=False)
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Show this many levels of the tree at most (1: the entry task run only).")
@click.option("--limit", type=click.IntRange(min=0), default=LOG_LIMIT, show_default=True,
              help="Show this many task runs on their own line at most (0: no limit).")
@click.option("--expand", is_flag=True,
              help=f"List every sibling instead of grouping more than {LOG_GROUP_AT} runs of one task.")
@click.option("--all", "show_all", is_flag=True, help="Every task run: --expand --limit 0.")
@click.option("--json", "as_json", is_flag=True, help=_JSON)
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True,
              help=_FORMAT)
@click.pass_context
def log(ctx: click.Context, run: str | None, depth: int | None, limit: int, expand: bool,
        show_all: bool, as_json: bool, fmt: str) -> None:
    """Show the task runs of RUN (an id or prefix; default: the latest run) as a tree.

    More than a few siblings that ran the same task are one line with their statuses
    counted, e.g. "summarize × 9,990 (9988 done, 2 failed)"; the failed and interrupted
    ones are still listed below it. --expand lists every sibling, --depth and --limit cut
    the tree, --all shows every task run.
    """
    _one_output(as_json, fmt)
    if show_all:
        expand, limit = True, 0
    found = api.log(cli_settings(ctx), run, depth=depth, limit=limit or None, expand=expand)
    if found is None:
        echo("No runs yet.")
        return
    if as_json:
        print_json(found.to_json())
        return
    if fmt != "text":
        click.echo(api.picture(found, fmt), nl=False)
        return
    info = found.run
    head = Text(f"run {info.short} {info.entry_task} ")
    head.append_text(status_text(info.status))
    head.append(f"  started {_when(info.started_at)}  {api.format_duration(info.duration)}  {_counts(info.counts)}")
    lines = [head, *_tree_lines(found.task_runs)]
    if sys.stdout.isatty():
        out = console()
        for line in lines:
            out.print(line)
    else:  # no colours off a terminal: plain text is 100 times faster than rendering
        click.echo("\n".join(line.plain for line in lines))
    if found.shown < found.total:
        echo(f"{found.shown:,} of {found.total:,} task runs shown"
             + ("; the limit was reached" if found.truncated else "")
             + " (--expand lists every sibling, --all every task run).", style="bright_black")


# -- show -----------------------------------------------------------------------------------


def _field(name: str, value: Any) -> None:
    if value not in (None, "", ()):
        echo(f"{name + ':':<14}{value}")


def _show_run(run: Any, failures: list[Any]) -> None:
    _field("run", run.id)
    _field("status", run.status)
    _field("entry", _entry(run))
    _field("command", run.command_line)
    _field("started", _when(run.started_at))
    _field("ended", _when(run.ended_at))
    _field("duration", api.format_duration(run.duration))
    _field("task runs", _counts(run.counts))
    _field("host", f"{run.user or '?'}@{run.host or '?'} pid {run.pid}")
    _field("executor", run.executor)
    _field("code", run.code_version)
    _field("ledgerflow", run.library_version)
    _field("result", run.result_hash)
    _field("tags", " ".join(map(str, run.tags)))
    for tr in failures:
        echo()
        echo(f"failed: {tr.short} {_cut(tr.call_display())}", style="bold red")
        echo(f"  {tr.exception_type}: {tr.exception_message}")


def _show_task_run(tr: Any) -> None:
    _field("task run", tr.id)
    _field("task", tr.task_name)
    _field("status", tr.status + (f" (cache of run {tr.cached_from[:8]})" if tr.cached_from else ""))
    _field("run", tr.run_id)
    _field("parent", tr.parent_id)
    _field("call", tr.call_hash)
    _field("started", _when(tr.started_at))
    _field("duration", api.format_duration(tr.duration))
    _field("attempt", tr.attempt if tr.attempt > 1 else None)
    _field("worker", tr.worker)
    _field("tags", " ".join(map(str, tr.tags)))
    echo("arguments:" if tr.arguments else "arguments:    (none recorded)")
    for arg in tr.arguments:
        echo(f"  {arg.name} = <{arg.value.short}> {_cut(arg.value.display())}")
    if tr.result is not None:
        _field("result", f"<{tr.result.short}> {_cut(tr.result.display())}")
    if tr.exception_type:
        echo(f"exception:    {tr.exception_type}: {tr.exception_message}", style="bold red")
        if tr.traceback:
            echo(tr.traceback.rstrip())
    if tr.logs:
        echo("logs:")
        for line in tr.logs:
            echo(f"  {line}")


def _show_call(call: Any) -> None:
    _field("call", call.hash)
    _field("task", f"{call.task_name} ({call.task_hash[:8]})")
    echo("arguments:")
    for arg in call.arguments:
        echo(f"  {arg.name} = <{arg.value.short}> {_cut(arg.value.display())}")
    if call.result is not None:
        _field("result", f"<{call.result.short}> {_cut(call.result.display())}")
    _field("parents", " ".join(p[:8] for p in call.parents or ()))
    _field("children", " ".join(c[:8] for c in call.children or ()))
    _field("tags", " ".join(map(str, call.tags)))
    for tr in call.task_runs or ():
        echo(f"  task run {tr.short} in run {tr.run_id[:8]}: {tr.status} {_when(tr.started_at)}")


def _show_value(value: Any) -> None:
    _field("value", value.hash)
    _field("type", value.type_name)
    _field("preview", value.preview)
    _field("size", value.size)
    _field("path", value.path)
    _field("created", _when(value.created_at))
    _field("tags", " ".join(map(str, value.tags)))
    _field("made by", " ".join(c[:8] for c in value.produced_by or ()))
    _field("used by", " ".join(c[:8] for c in value.used_by or ()))


def _show_file(file: Any) -> None:
    _field("file", file.path)
    _field("hash", file.hash)
    _field("content", file.content_hash)
    _field("size", file.size)
    _field("modified", _when(datetime.fromtimestamp(file.mtime).astimezone()) if file.mtime else None)
    _field("recorded", _when(file.created_at))
    _field("tags", " ".join(map(str, file.tags)))
    for tr in file.task_runs or ():
        echo(f"made by task run {tr.short} ({tr.task_name}, run {tr.run_id[:8]}, {tr.status} {_when(tr.started_at)})")


@click.command(short_help="Show everything about one run, task run, call, value or file.")
@click.argument("target", metavar="ID|PATH")
@click.option("--json", "as_json", is_flag=True, help=_JSON)
@click.pass_context
def show(ctx: click.Context, target: str, as_json: bool) -> None:
    """Show the record ID (a full id or a unique prefix) or the file PATH names."""
    with api.ledger(cli_settings(ctx)) as book:
        record = api.show(book, target)
        failures = (api.query(book, run=record.id, status="failed", limit=None)
                    if isinstance(record, api.RunInfo) and not as_json else [])
    if as_json:
        print_json(record.to_json())
    elif isinstance(record, api.RunInfo):
        _show_run(record, failures)
    else:
        {"task_run": _show_task_run, "call": _show_call, "file": _show_file,
         "value": _show_value}[record.kind](record)


# -- query ----------------------------------------------------------------------------------


@click.command(short_help="Find task runs by task, status, tag, file, time or run.")
@click.option("--task", help="Task name (the last dotted part is enough; * and ? globs work).")
@click.option("--status", help=f"Statuses, comma separated: {', '.join(TASK_RUN_STATUSES)}.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Tag on the task run, its run or its call (repeatable).")
@click.option("--file", "file", metavar="GLOB", help="Took or returned a file matching this glob.")
@click.option("--since", help=_SINCE)
@click.option("--until", help=_UNTIL)
@click.option("--run", "run_ids", multiple=True, metavar="RUN", help="Only in this run (id or prefix; repeatable).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0), help="Rows to show.")
@click.option("--offset", default=0, type=click.IntRange(min=0), help="Rows to skip (pages).")
@click.option("--json", "as_json", is_flag=True, help=_JSON)
@click.pass_context
def query(ctx: click.Context, task: str | None, status: str | None, tags: tuple[str, ...],
          file: str | None, since: str | None, until: str | None, run_ids: tuple[str, ...],
          limit: int, offset: int, as_json: bool) -> None:
    """List task runs matching every filter, newest first."""
    found = api.query(cli_settings(ctx), run=list(run_ids) or None, task=task, status=status,
                      tag=list(tags) or None, file=file, since=since, until=until,
                      limit=limit, offset=offset)
    if as_json:
        print_json([tr.to_json() for tr in found])
        return
    if not found:
        echo("No task runs match.")
        return
    print_table(
        ("id", "run", "status", "started", "duration", "call"),
        [(tr.short, tr.run_id[:8], tr.status, _when(tr.started_at), api.format_duration(tr.duration),
          _cut(tr.call_display()) + (f"  {tr.exception_type}: {_cut(tr.exception_message or '', 40)}"
                                     if tr.exception_type else ""))
         for tr in found],
    )


# -- tag ------------------------------------------------------------------------------------


@click.command(short_help="Add (or --remove) KEY=VALUE tags on a record.")
@click.argument("target", metavar="ID|PATH")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--remove", is_flag=True, help="Remove these tags (KEY removes every value of KEY).")
@click.option("--json", "as_json", is_flag=True, help=_JSON)
@click.pass_context
def tag(ctx: click.Context, target: str, pairs: tuple[str, ...], remove: bool, as_json: bool) -> None:
    """Tag the record ID|PATH (run, task run, call, value or file) with KEY=VALUE pairs."""
    change = (api.untag if remove else api.tag)(cli_settings(ctx), target, pairs)
    if as_json:
        print_json(change.to_json())
        return
    kind = change.kind.replace("_", " ")
    if remove:
        echo(f"Removed {change.removed} tag(s) from {kind} {change.id[:8]}.")
    shown = " ".join(map(str, change.tags)) or "(none)"
    echo(f"{kind} {change.id[:8]} tags: {shown}")


# -- dataflow -------------------------------------------------------------------------------


@click.command(short_help="How a value or file was derived (or, --downstream, what came of it).")
@click.argument("target", metavar="VALUE|PATH")
@click.option("--downstream", is_flag=True, help="Show what was derived from it instead.")
@click.option("--max", "max_nodes", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Stop after this many values (upstream) or calls (downstream).")
@click.option("--json", "as_json", is_flag=True, help=_JSON)
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True,
              help=_FORMAT)
@click.pass_context
def dataflow(ctx: click.Context, target: str, downstream: bool, max_nodes: int, as_json: bool,
             fmt: str) -> None:
    """Trace VALUE (a hash or prefix, or a task run/call whose result it is) or a file PATH."""
    _one_output(as_json, fmt)
    flow = api.dataflow(cli_settings(ctx), target, downstream=downstream, max_nodes=max_nodes)
    if as_json:
        print_json(flow.to_json())
        return
    if fmt != "text":
        click.echo(api.picture(flow, fmt), nl=False)
        return
    for line in flow.lines:
        echo(line)
