"""``ledgerflow run TARGET`` and ``ledgerflow explain TARGET``: a task from the command line.

TARGET is ``package.module:task`` or ``path/to/file.py:task``; the task's parameters are
options (see :mod:`ledgerflow.cli.params`). Both commands build the lazy call and hand it
to :mod:`ledgerflow.api`; this module only parses and prints.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click

from ledgerflow import api
from ledgerflow.cli.output import cli_settings, echo, print_json, print_table
from ledgerflow.cli.params import TaskCommand
from ledgerflow.cli.progress import RunProgress, failure_block, short_id, summary_line
from ledgerflow.config.settings import EXECUTOR_KINDS
from ledgerflow.errors import (
    LedgerflowError,
    RunFailedError,
    RunInterruptedError,
    UsageError,
    signal_name,
)

PREVIEW_CHARS = 120
PLAN_LINES = 50


def _load_task(ctx: click.Context, target: str) -> Any:
    """Import the task named by TARGET, with the project directory and cwd on sys.path."""
    config_path = (ctx.find_root().obj or {}).get("config_path")
    found = api.load_target(target, config_path=config_path)
    if found.root is not None:
        ctx.meta[TaskCommand.ROOT_KEY] = found.root
    return found.task


def _parse_tags(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    return api.run_tags(list(values))


def _command_line(ctx: click.Context) -> str:
    return shlex.join([*ctx.command_path.split(), *ctx.meta.get(TaskCommand.ARGV_KEY, ())])


def _call(ctx: click.Context) -> Any:
    call = ctx.meta.get("ledgerflow.call")
    if call is None:
        raise UsageError(
            f"missing TARGET: which task to {ctx.command.name}?",
            hint=f"ledgerflow {ctx.command.name} package.module:task or path/to/file.py:task",
        )
    return call


def result_json(result: Any, retried: int = 0) -> dict[str, Any]:
    """The RunResult summary printed by ``run --json``.

    ``counts`` are calls by final state; ``retried_attempts`` the failed attempts that were
    retried (``ledgerflow log`` lists them as failed task runs).
    """
    return {
        "run_id": result.run_id,
        "status": result.status,
        "counts": dict(result.counts),
        "retried_attempts": retried,
        "duration": round(result.duration, 6),
        "result": result.value_preview(PREVIEW_CHARS),
        "failures": [
            {
                "task": f.task_name,
                "arguments": f.arguments_preview,
                "exception_type": f.exception_type,
                "message": f.message,
                "traceback": f.traceback,
            }
            for f in result.failures
        ],
        "notes": list(getattr(result, "notes", ())),
    }


@click.command(
    cls=TaskCommand, load=_load_task,
    short_help="Run a task: ledgerflow run MODULE:TASK [--arg value ...].",
)
@click.argument("target", metavar="TARGET", required=False)
@click.option("--no-cache", is_flag=True, help="Execute every call; use no cached result.")
@click.option("--rerun", "rerun", multiple=True, metavar="TASK_NAME",
              help="Ignore cached results of this task and of the tasks that call it "
              "(repeatable); an unknown name is an error listing the known ones.")
@click.option("--no-wait", is_flag=True,
              help="Compute calls another run is computing instead of waiting for their "
              "results (config: cache.wait).")
@click.option("--executor", type=click.Choice(EXECUTOR_KINDS), default=None,
              help="Where tasks execute (default: the configuration's, else local).")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Worker threads or processes (default: all cores).")
@click.option("--tag", "tags", multiple=True, callback=_parse_tags, metavar="KEY=VALUE",
              help="Label the run (repeatable).")
@click.option("--dry-run", is_flag=True,
              help="Show what would run and what is cached; write nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
@click.pass_context
def run(ctx: click.Context, target: str | None, no_cache: bool, rerun: tuple[str, ...],
        no_wait: bool, executor: str | None, workers: int | None, tags: dict[str, str], dry_run: bool,
        quiet: bool, as_json: bool) -> None:
    """Run TARGET (package.module:task or path/to/file.py:task) and record it in the ledger.

    The task's parameters are options: ``ledgerflow run --help TARGET`` lists them.
    Cached calls are reused; the run's id, status and counts are printed at the end.
    """
    call = _call(ctx)
    settings = cli_settings(ctx)
    progress = RunProgress(live=not quiet and not as_json and sys.stderr.isatty())
    try:
        result = api.execute(
            call, settings=settings, executor=executor, workers=workers, cache=not no_cache,
            rerun=rerun, tags=tags or None, dry_run=dry_run, observer=progress,
            command_line=_command_line(ctx), wait=False if no_wait else None,
        )
    except KeyboardInterrupt as exc:  # before the run began, or after it was recorded
        if getattr(exc, "after_end", False):
            raise _too_late(progress.run_id, getattr(exc, "signum", None)) from None
        raise _interrupted(progress.run_id, getattr(exc, "signum", None)) from None
    finally:
        progress.close()
    try:
        _report(result, quiet=quiet, as_json=as_json, dry_run=dry_run,
                retried=0 if dry_run else _retried_attempts(settings, result))
    except KeyboardInterrupt as exc:  # the run's end is recorded already
        raise _too_late(result.run_id, getattr(exc, "signum", None)) from None


def _retried_attempts(settings: Any, result: Any) -> int:
    """Attempts that failed and were retried: ``log`` shows them, the call counts do not."""
    if not result.run_id:
        return 0
    try:
        attempts = api.attempt_counts(settings, result.run_id)
    except LedgerflowError:
        return 0
    return max(0, attempts.get("failed", 0) - result.counts.get("failed", 0))


def _report(result: Any, *, quiet: bool, as_json: bool, dry_run: bool,
            retried: int = 0) -> None:
    if as_json:
        data = result_json(result, retried)
        if dry_run:
            data["plan"] = [_plan_entry(item) for item in result.plan or ()]
        print_json(data)
    elif dry_run:
        _print_plan(result)
    for failure in result.failures:
        click.echo(failure_block(failure), err=True)
    if not as_json:
        _print_notes(getattr(result, "notes", ()))
    if result.status == "interrupted":
        raise _interrupted(result.run_id, result.signal)
    if result.status == "failed":
        raise RunFailedError(
            summary_line(result.run_id, "failed", result.duration, result.counts, retried),
            hint=f"ledgerflow show {short_id(result.run_id)}",
        )
    if not quiet and not as_json and not dry_run:
        shown = result.value_preview(PREVIEW_CHARS)  # a stored large value is not read
        if shown is not None:
            echo(f"result: {shown}")
        echo(summary_line(result.run_id, result.status, result.duration, result.counts, retried))


#: Notes printed after a run; the rest are counted (``--json`` lists them all).
NOTES_SHOWN = 20


def _print_notes(notes: Any) -> None:
    """One line on stderr per cached result the run could not use (and computed again)."""
    notes = list(notes)
    for line in notes[:NOTES_SHOWN]:
        click.echo(click.style(f"note: {line}", fg="yellow"), err=True)
    if len(notes) > NOTES_SHOWN:
        click.echo(f"note: … and {len(notes) - NOTES_SHOWN} more (run --json lists them)", err=True)


def _interrupted(run_id: str | None, signum: int | None) -> RunInterruptedError:
    by = f" by {signal_name(signum)}" if signum is not None else ""
    what = f"run {short_id(run_id)}" if run_id else "the run"
    return RunInterruptedError(
        f"{what} interrupted{by}", hint="finished tasks are recorded and cached", signum=signum
    )


def _too_late(run_id: str | None, signum: int | None) -> RunInterruptedError:
    """A stop signal that arrived once the run's end was recorded: nothing was interrupted,
    but the process still ends with 128 + the signal's number."""
    if not run_id:
        return _interrupted(run_id, signum)
    return RunInterruptedError(
        f"run {short_id(run_id)} had ended when {signal_name(signum)} arrived",
        hint=f"its record is complete: ledgerflow show {short_id(run_id)}", signum=signum,
    )


def _plan_entry(item: Any) -> dict[str, Any]:
    return {
        "task": item.task_name,
        "arguments": item.arguments_preview,
        "status": item.status,
        "reason": getattr(item, "reason", None),
    }


def _print_plan(result: Any) -> None:
    """Each call of a dry run (the first PLAN_LINES), then totals per task."""
    plan = list(result.plan or ())
    for item in plan[:PLAN_LINES]:
        reason = f"  ({item.reason})" if getattr(item, "reason", None) else ""
        echo(f"{'cached' if item.status == 'cached' else 'run':>6}  "
             f"{item.task_name}({item.arguments_preview}){reason}",
             style="cyan" if item.status == "cached" else None)
    if len(plan) > PLAN_LINES:
        echo(f"        … and {len(plan) - PLAN_LINES} more calls")
    per_task: dict[str, list[int]] = {}
    for item in plan:
        per_task.setdefault(item.task_name, [0, 0])[item.status == "cached"] += 1
    if per_task:
        print_table(["task", "would run", "cached"],
                    [(name, run, cached) for name, (run, cached) in sorted(per_task.items())])
    would_run = sum(run for run, _ in per_task.values())
    echo(f"dry run: {would_run} would run, {len(plan) - would_run} cached; nothing was written")


@click.command(
    cls=TaskCommand, load=_load_task,
    short_help="Say whether a task call is cached, or why it would run.",
)
@click.argument("target", metavar="TARGET", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.pass_context
def explain(ctx: click.Context, target: str | None, as_json: bool) -> None:
    """Explain whether TARGET called with the given options would come from the cache.

    Prints "cached", or the reasons the call would run: never run, code changed (which
    function), which argument changed, which file changed. Nothing is written.
    """
    call = _call(ctx)
    explanation = api.explain(call, settings=cli_settings(ctx))
    if as_json:
        print_json({"task": explanation.task_name, "status": explanation.status,
                    "reasons": list(explanation.reasons)})
        return
    if explanation.status == "cached":
        echo(f"{explanation.task_name}: cached", style="cyan")
        for reason in explanation.reasons:
            echo(f"  {reason}")
        return
    echo(f"{explanation.task_name}: would run", style="yellow")
    for reason in explanation.reasons:
        echo(f"  - {reason}")
