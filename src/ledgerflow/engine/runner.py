"""``execute`` and ``run``: one pipeline run from an expression to its recorded result."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ledgerflow.engine import checks
from ledgerflow.engine.expr import find_calls, substitute
from ledgerflow.engine.interrupts import Interrupts
from ledgerflow.engine.results import Failure, RunObserver, RunResult
from ledgerflow.engine.runinfo import git_commit, host_name, user_name
from ledgerflow.engine.task import Call
from ledgerflow.engine.workspace import (
    ConfigArg,
    ensure_ledger,
    project_directory,
    resolve_settings,
)
from ledgerflow.errors import RunFailedError, RunInterruptedError, signal_name
from ledgerflow.ledger.status import run_status
from ledgerflow.ledger.tags import Tags, run_tags

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.engine.executor import Executor

log = logging.getLogger("ledgerflow")

TagsArg = Tags | None


def entry_name(expr: Any) -> str:
    if isinstance(expr, Call):
        return expr.task.fullname
    calls = find_calls(expr)
    return f"{type(expr).__name__} of {len(calls)} call{'s' if len(calls) != 1 else ''}"


def entry_arguments(expr: Any) -> dict[str, Any]:
    """The entry task's arguments (``context.args``); nested calls show as None."""
    if not isinstance(expr, Call):
        return {}
    return {
        name: substitute(value, lambda _call: None) for name, value in expr.arguments.items()
    }


def _arguments_json(expr: Any) -> str | None:
    if not isinstance(expr, Call):
        return None
    from ledgerflow.values import preview

    shown: dict[str, Any] = {}
    for name, value in expr.arguments.items():
        if isinstance(value, Call):
            shown[name] = f"<{value.task.name}(...)>"
        elif type(value) in (int, float, bool, type(None)) or (
            type(value) is str and len(value) <= 200
        ):
            shown[name] = value
        else:
            shown[name] = preview(value)
    return json.dumps(shown)


class _Guarded:
    """Calls an observer; a method that raises is logged once and not called again."""

    def __init__(self, observer: RunObserver) -> None:
        self.observer = observer
        self.broken: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.observer, name)

        def call(*args: Any) -> None:
            if name in self.broken:
                return
            try:
                method(*args)
            except Exception:
                self.broken.add(name)
                log.warning("the run observer's %s failed; it is not called again", name,
                            exc_info=True)  # fmt: skip

        return call


def _executor(settings: Settings, executor: str | Executor | None, workers: int | None) -> Executor:
    from ledgerflow.engine.executor import get_executor

    return get_executor(executor or settings.executor.kind, workers or settings.executor.workers)


def execute(
    expr: Any,
    *,
    config: ConfigArg = None,
    settings: Settings | None = None,
    executor: str | Executor | None = None,
    workers: int | None = None,
    cache: bool = True,
    rerun: Iterable[str] = (),
    tags: TagsArg = None,
    dry_run: bool = False,
    observer: RunObserver | None = None,
    command_line: str | None = None,
    wait: bool | None = None,
) -> RunResult:
    """Run ``expr`` (a task call, or calls nested in lists/dicts/...) and record it.

    An uncached call another run is computing is waited for (its result is then a cache
    hit) while this run does its other work; ``wait=False`` computes it anyway (default:
    the configuration's ``cache.wait``).

    Returns a :class:`RunResult` whatever the tasks did; :func:`run` raises instead. Before
    anything is recorded, an unknown ``rerun`` name or a missing input ``File`` is a
    :class:`~ledgerflow.errors.UsageError`; a ledger that refuses writes is a
    :class:`~ledgerflow.errors.DatabaseError`.
    """
    settings = resolve_settings(config, settings)
    rerun = frozenset([rerun] if isinstance(rerun, str) else rerun)
    tag_pairs = list(run_tags(tags).items())
    # mistakes that would otherwise surface inside the run: one error, and no run recorded
    checks.check_input_files(expr, project_directory(settings))
    checks.check_rerun(expr, rerun, settings)
    ensure_ledger(settings)
    if dry_run:
        from ledgerflow.engine.plan import dry_run as plan_run

        return plan_run(expr, settings, cache=cache, rerun=rerun)
    runner = _Run(settings, _executor(settings, executor, workers), observer)
    try:
        return runner.execute(
            expr, cache=cache, rerun=rerun, tags=tag_pairs, command_line=command_line,
            wait=settings.cache.wait if wait is None else wait,
        )
    except Exception as exc:
        refused = checks.refused_write(exc, settings)
        if refused is None:
            raise
        raise refused from exc


class _Run:
    """The resources of one run, opened and closed around the scheduler."""

    def __init__(
        self, settings: Settings, executor: Executor, observer: RunObserver | None
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.observer = _Guarded(observer) if observer is not None else None
        self.run_id = uuid.uuid4().hex
        self.interrupts = Interrupts()
        self.signal: int | None = None  # the signal that interrupted the run

    def _run_row(self, expr: Any, command_line: str | None, config_hash: str) -> dict[str, Any]:
        from ledgerflow._version import __version__

        now = datetime.now(UTC)
        settings = self.settings
        return {
            "id": self.run_id,
            "status": "running",
            "entry_task": entry_name(expr)[:255],
            "arguments": _arguments_json(expr),
            "command_line": command_line if command_line is not None else shlex.join(sys.argv),
            "started_at": now,
            "ended_at": None,
            "heartbeat_at": now,
            "host": host_name()[:255],
            "user": user_name()[:255],
            "pid": os.getpid(),
            "executor": self.executor.name,
            "config_hash": config_hash,
            "code_version": git_commit(settings.root),
            "library_version": __version__,
            "root_call_hash": None,
            "result_hash": None,
            "writer": settings.writer[:255],  # PostgreSQL sets its own: the role's name
        }

    def execute(
        self,
        expr: Any,
        *,
        cache: bool,
        rerun: frozenset[str],
        tags: list[tuple[str, str]],
        command_line: str | None,
        wait: bool = True,
    ) -> RunResult:
        from ledgerflow.engine.scheduler import Scheduler
        from ledgerflow.engine.workspace import open_workspace, task_surroundings
        from ledgerflow.ledger.heartbeat import reap_stale_runs
        from ledgerflow.ledger.recorder import Recorder

        settings = self.settings
        started = time.monotonic()
        with self.interrupts.installed(), open_workspace(settings, defer_values=True) as space:
            reap_stale_runs(space.engine)
            recorder = Recorder(space.engine, writer=settings.writer)
            parking = self._parking(space.engine, recorder, wait) if cache else None
            try:
                values = space.values(recorder)
                values.store.remove_partial()  # left by writers killed an hour or more ago
                scheduler = Scheduler(
                    run_id=self.run_id, recorder=recorder, values=values,
                    cache=space.reader if cache else None, executor=self.executor, rerun=rerun,
                    observer=self.observer,  # type: ignore[arg-type]
                    interrupts=self.interrupts, written=space.written(self.run_id),
                    parking=parking,
                )  # fmt: skip
                with task_surroundings(settings):
                    status, value = self._record(
                        scheduler, recorder, values, expr, tags, command_line
                    )
            finally:
                recorder.close()
                if parking is not None:
                    parking.claims.close()
        result = RunResult(
            run_id=self.run_id,
            status=status,
            value=value if status == "done" else None,
            failures=list(scheduler.failures),
            counts=dict(scheduler.counts),
            duration=time.monotonic() - started,
            signal=self.signal if status == "interrupted" else None,
            notes=list(scheduler.notes),
        )
        if self.observer is not None:
            self.observer.run_finished(result)
        return result

    def _parking(self, engine: Any, recorder: Any, wait: bool) -> Any:
        """Claims for this run (``cache.claim``), seen by the recorder that writes its
        cache entries and by the heartbeat that extends their leases."""
        if not self.settings.cache.claim:
            return None
        from ledgerflow.engine.claiming import Parking
        from ledgerflow.ledger.claims import Claims

        cache = self.settings.cache
        claims = Claims(engine, self.run_id, lease=cache.lease, poll=cache.poll)
        recorder.claims = claims
        return Parking(claims, wait=wait)

    def _record(
        self,
        scheduler: Any,
        recorder: Any,
        values: Any,
        expr: Any,
        tags: list[tuple[str, str]],
        command_line: str | None,
    ) -> tuple[str, Any]:
        """Run the scheduler between the run's first and last records; its status and value."""
        from ledgerflow.engine.executor import WorkerEnv
        from ledgerflow.ledger.heartbeat import Heartbeat

        settings = self.settings
        now = datetime.now(UTC)
        config_hash = settings.hash
        configuration = {"hash": config_hash, "yaml": settings.redacted_yaml(), "created_at": now}
        tag_rows = [
            {"entity_id": self.run_id, "key": k, "value": v, "entity_kind": "run",
             "created_at": now}
            for k, v in tags
        ]
        heartbeat = Heartbeat(
            recorder.engine, self.run_id, on_beat=scheduler.flush_if_idle, claims=recorder.claims
        )
        entry = entry_name(expr)
        value: Any = None
        started_executor = False
        try:
            run_row = self._run_row(expr, command_line, config_hash)
            recorder.start_run(run_row, configuration, tag_rows)
            heartbeat.start()
            if self.observer is not None:
                self.observer.run_started(self.run_id, entry)
            self.executor.start(WorkerEnv(settings, self.run_id, entry_arguments(expr)))
            started_executor = True
            try:
                value = scheduler.run(expr)
                if not scheduler.interrupted:
                    scheduler.finish_unfinished()
                heartbeat.stop()  # no flush from its thread from now on
                recorder.flush(final=True)  # every task run; then the run's end is decided
                interrupted = scheduler.interrupted or self.interrupts.requested
                self.signal = self.interrupts.settle(interrupted)
                scheduler.interrupted = interrupted
                status, root, result_hash = self._outcome(scheduler, expr, value, values)
                recorder.end_run(self.run_id, status, root, result_hash)
                recorder.flush(final=True)
            except BaseException:
                self._abandon(recorder, scheduler)
                raise
        finally:
            heartbeat.stop()
            scheduler.release()
            self._release_claims(recorder)
            if started_executor:
                self.executor.shutdown(cancel=scheduler.interrupted)
        return status, value

    def _release_claims(self, recorder: Any) -> None:
        """The run is over (also interrupted or failed): what it still claims is let go, so
        that the runs waiting for those calls compute them."""
        if recorder.claims is None:
            return
        try:
            recorder.claims.release_all()
        except Exception:
            log.debug("could not release the claims of run %s", self.run_id, exc_info=True)

    def _outcome(
        self, scheduler: Any, expr: Any, value: Any, values: Any
    ) -> tuple[str, str | None, str | None]:
        status = run_status(scheduler.counts, interrupted=scheduler.interrupted)
        root = None
        result_hash = None
        if isinstance(expr, Call):
            node = scheduler.nodes.get(id(expr))
            root = node.call_hash if node is not None else None
            result_hash = node.value_hash if node is not None and status == "done" else None
        elif status == "done":
            try:
                result_hash = values.hash(value)
                values.record(value, result_hash)
            except Exception:  # the run's value is recorded when it can be
                result_hash = None
        return status, root, result_hash

    def _abandon(self, recorder: Any, scheduler: Any) -> None:
        """The engine itself failed: record what can be, and end the run ``failed``."""
        if self.signal is None:
            self.signal = self.interrupts.settle(scheduler.interrupted)
        try:
            status = "interrupted" if scheduler.interrupted else "failed"
            recorder.end_run(self.run_id, status, None, None)
            recorder.flush(final=True)
        except BaseException:
            log.debug("could not record the end of run %s", self.run_id, exc_info=True)


def run(
    expr: Any,
    *,
    config: ConfigArg = None,
    settings: Settings | None = None,
    executor: str | Executor | None = None,
    workers: int | None = None,
    cache: bool = True,
    rerun: Iterable[str] = (),
    tags: TagsArg = None,
    dry_run: bool = False,
    observer: RunObserver | None = None,
    command_line: str | None = None,
    wait: bool | None = None,
) -> Any:
    """Run ``expr`` and return its concrete value (the plan for a dry run).

    Raises :class:`~ledgerflow.errors.RunFailedError` when a task failed (its message lists
    every failure) and :class:`~ledgerflow.errors.RunInterruptedError` after Ctrl-C, SIGTERM
    or SIGHUP (its ``exit_code`` is 128 + the signal's number: 130, 143, 129).
    """
    result = execute(
        expr, config=config, settings=settings, executor=executor, workers=workers,
        cache=cache, rerun=rerun, tags=tags, dry_run=dry_run, observer=observer,
        command_line=command_line, wait=wait,
    )  # fmt: skip
    if dry_run:
        return result.plan
    raise_for_status(result)
    return result.value


def failure_report(failures: list[Failure], counts: Mapping[str, int]) -> str:
    """Every failure as a readable block, with the number of skipped calls."""
    blocks = [f.render() for f in failures]
    skipped = counts.get("skipped", 0)
    if skipped:
        plural = "s" if skipped != 1 else ""
        blocks.append(f"{skipped} call{plural} skipped (they needed a failed result)")
    return "\n".join(blocks)


def raise_for_status(result: RunResult) -> None:
    """Raise RunFailedError / RunInterruptedError for a run that did not end ``done``."""
    if result.status == "interrupted":
        by = f" by {signal_name(result.signal)}" if result.signal is not None else ""
        error: RunFailedError | RunInterruptedError = RunInterruptedError(
            f"run {result.run_id} was interrupted{by}; finished work is recorded and cached",
            hint="run it again to continue from the cache",
            signum=result.signal,
        )
    elif result.status == "failed":
        n = len(result.failures)
        error = RunFailedError(
            f"run {result.run_id} failed: {n} task{'s' if n != 1 else ''} failed\n"
            + failure_report(result.failures, result.counts),
            hint=f"see `ledgerflow show {result.run_id[:8]}`" if result.run_id else None,
        )
    else:
        return
    error.result = result  # type: ignore[union-attr]
    raise error
