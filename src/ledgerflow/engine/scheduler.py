"""The scheduler: expands the lazy graph, checks the cache, runs calls, records the ledger.

Everything is iterative (queues, no recursion over the graph), so a chain of tens of
thousands of dependent calls works. One loop turn: check the cache for every call that
became ready (one query), submit what must run, collect outcomes, settle the nodes whose
value is known (waking their dependents and parents), flush the recorder when due.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ledgerflow.engine import node as st
from ledgerflow.engine.claiming import Claiming
from ledgerflow.engine.executor import ErrorInfo, Job, Outcome
from ledgerflow.engine.expr import ATOMS, find_calls, substitute
from ledgerflow.engine.failing import Failing
from ledgerflow.engine.graph import Graph
from ledgerflow.engine.interrupts import Interrupts
from ledgerflow.engine.node import Node, Relay, StoredResult
from ledgerflow.engine.results import Failure
from ledgerflow.engine.task import Call, Task, rerun_covers
from ledgerflow.engine.valuing import LazyValue, serialisation_error
from ledgerflow.engine.worker import error_info
from ledgerflow.hashing import combine
from ledgerflow.ledger.status import TASK_RUN_STATUSES

if TYPE_CHECKING:
    from ledgerflow.engine.cache import CacheHit, CacheReader
    from ledgerflow.engine.claiming import Parking
    from ledgerflow.engine.executor import Executor
    from ledgerflow.engine.results import RunObserver
    from ledgerflow.engine.valuing import Values
    from ledgerflow.engine.written import WrittenRows
    from ledgerflow.ledger.recorder import Recorder

#: Seconds the loop waits for outcomes of a pool before its housekeeping turn.
TICK = 0.1
#: Minimum seconds between two progress reports.
PROGRESS_EVERY = 0.1
#: Allocations between two young-generation collections while a run works.
GC_THRESHOLD = 50_000


def _new_id() -> str:
    return os.urandom(16).hex()


class Scheduler(Claiming, Failing):
    """Runs one expression to its value, recording every call."""

    tick = TICK

    def __init__(
        self,
        *,
        run_id: str,
        recorder: Recorder,
        values: Values,
        cache: CacheReader | None,
        executor: Executor,
        rerun: Iterable[str] = (),
        observer: RunObserver | None = None,
        interrupts: Interrupts | None = None,
        written: WrittenRows | None = None,
        parking: Parking | None = None,
    ) -> None:
        self.run_id = run_id
        #: claims calls before computing them; holds the calls other runs compute
        self.parking = parking
        self.recorder = recorder
        self.values = values
        self.cache = cache
        self.executor = executor
        self.rerun = frozenset(rerun)
        self._reruns: dict[int, bool] = {}
        self.observer = observer
        #: rows calls wrote through their sessions: recorded, and checked for cache hits
        self.written = written
        #: Signals are noted there and acted on at the loop's next turn (never mid-write).
        self.interrupts = interrupts if interrupts is not None else Interrupts()
        self.graph = Graph(recorder, values, cache)
        self.nodes = self.graph.nodes
        self.order = self.graph.order
        self.ready: list[Node] = []
        self.runnable: deque[Node] = deque()
        self.running: dict[str, Node] = {}
        self.settling: deque[Node] = deque()
        self.by_key: dict[tuple[str, str], Node] = {}
        self.counts: dict[str, int] = dict.fromkeys(TASK_RUN_STATUSES, 0)
        self.failures: list[Failure] = []
        #: one line per cached result that could not be used (changed, untrusted)
        self.notes: list[str] = []
        self.interrupted = False
        self._started = time.monotonic()
        self._last_progress = 0.0
        self._reported: dict[str, int] = {}
        executor.on_job_start = self._job_starting
        executor.while_task_runs = self._idle
        self._lock = threading.Lock()  # held by the scheduler except while a local task runs
        self._holding = False

    # -- the loop ----------------------------------------------------------------------

    def run(self, expr: Any) -> Any:
        """Evaluate ``expr`` (calls nested anywhere in it); returns its concrete value, or a
        :class:`~ledgerflow.engine.valuing.LazyValue` when ``expr`` is one call whose result
        a worker stored itself.

        The scheduler keeps its lock until :meth:`release` (after the heartbeat stopped)."""
        threshold = gc.get_threshold()
        gc.freeze()  # what existed before the run is not rescanned by every collection
        gc.set_threshold(max(threshold[0], GC_THRESHOLD), *threshold[1:])
        self._take_lock()
        try:
            roots = self.discover(find_calls(expr), parent=None)
            try:
                self._loop()
            except KeyboardInterrupt:
                self._interrupt()
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
        self._report(force=True)
        if self.interrupted or any(not n.final for n in roots):
            return None
        if any(n.phase not in st.HAS_VALUE for n in roots):
            return None
        if type(expr) is Call and type(roots[0].value) is StoredResult:
            # a result a worker stored is read only when the caller asks for it
            return LazyValue(self.values, roots[0].value)
        self.graph.materialize(roots)
        return substitute(expr, self._result_of)

    def _loop(self) -> None:
        executor = self.executor
        running = self.running
        check = self.interrupts.check
        while True:
            check()
            if self.ready:
                self._dispatch_ready()
            if self.parking is not None and self.parking.unclaimed:
                self._claim_more()
            capacity = executor.capacity
            while self.runnable and len(running) < capacity:
                self._submit(self.runnable.popleft())
            if self.settling:
                self._settle()
                continue
            if not running:
                if self.ready or self.runnable:
                    continue
                if self.parking is not None and (self.parking.parked or self.parking.unclaimed):
                    self._wait_parked()
                    continue
                break
            self._housekeeping()  # after submitting, so a flush shows what now runs
            for outcome in executor.collect(TICK):
                self._on_outcome(outcome)
            self._settle()

    def release(self) -> None:
        """Called once the heartbeat is stopped: the run's state is no longer shared."""
        self._drop_lock()

    def _take_lock(self) -> None:
        self._lock.acquire()
        self._holding = True

    def _drop_lock(self) -> None:
        if self._holding:
            self._holding = False
            self._lock.release()

    @contextmanager
    def _idle(self) -> Iterator[None]:
        """A task's code runs in this thread: let the heartbeat flush meanwhile, and let a
        signal stop the task at once."""
        self._drop_lock()
        try:
            with self.interrupts.raising():
                yield
        finally:
            self._take_lock()

    def flush_if_idle(self) -> None:
        """From the heartbeat thread: flush when the scheduler waits for a local task."""
        if self._lock.acquire(blocking=False):
            try:
                if self.recorder.due():
                    self.recorder.flush(final=False)
            finally:
                self._lock.release()

    def _housekeeping(self) -> None:
        if self.recorder.due():
            self.recorder.flush(final=False)
        if self.parking is not None and self.parking.due():
            self._poll_parked()
        if self.observer is not None:
            self._report()

    def _report(self, force: bool = False) -> None:
        if self.observer is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_EVERY:
            return
        if self.counts != self._reported or force:
            self._last_progress = now
            self._reported = dict(self.counts)
            self.observer.counts_changed(dict(self.counts), now - self._started)

    def _interrupt(self) -> None:
        self.interrupted = True
        try:
            for outcome in self.executor.take_finished():
                self._on_outcome(outcome, expand=False)
            self._settle()
        except KeyboardInterrupt:
            pass
        now = time.time()
        for node in self.order:
            if node.final:
                continue
            self._set_phase(node, st.INTERRUPTED)
            row = self._ensure_row(node, st.INTERRUPTED)
            row["status"] = st.INTERRUPTED
            row["ended_at"] = now
            self.recorder.task_run_changed(row)

    # -- discovery ---------------------------------------------------------------------

    def discover(self, calls: list[Call], parent: Node | None) -> list[Node]:
        """Nodes for ``calls`` and the calls nested in their arguments; queues the ready ones."""
        found = self.graph.discover(calls, parent)
        self.counts["pending"] += found.created
        self.ready.extend(found.ready)
        for node, cause in found.blocked:
            self._skip(node, cause)
            self._cascade(node)
        return found.nodes

    def _result_of(self, call: Call) -> Any:
        return self.graph.result_of(call)

    # -- ready calls: arguments, cache -------------------------------------------------

    def _dispatch_ready(self) -> None:
        batch, self.ready = self.ready, []
        lookups: list[Node] = []
        use_cache = self.cache is not None
        for node in batch:
            if node.phase is not st.READY:
                continue
            try:
                self.graph.hash_arguments(node)
            except Exception as exc:
                self._fail(node, error_info(exc, skip_frames=0))
                continue
            task = node.task
            if not task.cache:
                self._queue(node)
                continue
            key = (node.task_hash, node.args_hash)
            node.key = key
            prior = self.by_key.get(key)
            if prior is not None and prior is not node:
                self._follow(node, prior)
                continue
            self.by_key[key] = node
            if use_cache and not self._rerun(task):
                lookups.append(node)
            else:
                self._queue(node)
        if lookups:
            assert self.cache is not None
            hits = self.cache.lookup([n.key for n in lookups])  # type: ignore[misc]
            gone = self.written.check(hits.values()) if self.written is not None else {}
            missed: list[Node] = []
            for node in lookups:
                hit = hits.get(node.key)  # type: ignore[arg-type]
                if hit is not None and hit.call_hash in gone:
                    node.miss_reason, hit = gone[hit.call_hash], None
                if hit is not None and self._use_hit(node, hit):
                    continue
                if node.key in hits:  # an entry that cannot be used: computed here, unclaimed
                    self._queue(node)
                else:
                    missed.append(node)
            self._compute(missed)
        self._settle()

    def _rerun(self, task: Task[Any, Any]) -> bool:
        found = self._reruns.get(id(task))
        if found is None:
            found = self._reruns[id(task)] = rerun_covers(task, self.rerun)
        return found

    def _use_hit(self, node: Node, hit: CacheHit) -> bool:
        values = self.values
        ok, value, why = values.check_hit(hit)
        if not ok:
            node.miss_reason = why
            if hit.value_hash in values.notes:  # not a changed file: something to tell
                self.notes.append(
                    f"{node.describe()}: cached result not used, {why}; computing it again"
                )
            return False
        self.recorder.value_known(hit.value_hash)
        self._finish_cached(node, value, hit.value_hash, hit.call_hash, hit.run_id)
        return True

    def _follow(self, node: Node, prior: Node) -> None:
        """``node`` is the same call as ``prior`` (same task code and arguments)."""
        if prior.phase in st.HAS_VALUE:
            self._finish_cached(node, prior.value, prior.value_hash, prior.call_hash, self.run_id)
        elif prior.final:
            self._skip(node, prior)
            self._cascade(node)
        else:
            self._set_phase(node, st.FOLLOWING)
            prior.followers.append(node)

    # -- rows --------------------------------------------------------------------------

    def _ensure_row(self, node: Node, status: str) -> dict[str, Any]:
        row = node.row
        if row is None:
            parent = node.parent
            row = node.row = {
                "id": _new_id(),
                "run_id": self.run_id,
                "parent_id": parent.row["id"] if parent is not None and parent.row else None,
                "task_hash": node.task_hash,
                "task_name": node.task.fullname,
                "args_hash": node.args_hash,
                "call_hash": None,
                "value_hash": None,
                "status": status,
                "attempt": node.attempt,
                "cached_from": None,
                "started_at": None,
                "ended_at": None,
                "duration": None,
                "worker": None,
                "exception_type": None,
                "exception_message": None,
                "traceback": None,
            }
            self.recorder.task_run(row)
        return row

    def _record_arguments(self, node: Node) -> None:
        recorder = self.recorder
        if recorder.has_arguments(node.args_hash):
            return
        record = self.values.record
        rows = []
        position = 0
        for name, value, digest in zip(node.task.param_names, node.resolved, node.arg_hashes):
            record(value, digest)
            rows.append((node.args_hash, position, name, digest))
            position += 1
        recorder.arguments(node.args_hash, rows)

    def _set_phase(self, node: Node, phase: str) -> None:
        counts = self.counts
        counts[st.STATUS_OF[node.phase]] -= 1
        counts[st.STATUS_OF[phase]] += 1
        node.phase = phase

    # -- running -----------------------------------------------------------------------

    def _queue(self, node: Node) -> None:
        try:
            self.graph.concrete_arguments(
                node, keep_stored=self.executor.accepts_stored_results
            )
            self._record_arguments(node)
        except Exception as exc:
            self._fail(node, error_info(exc, skip_frames=0))
            return
        self._set_phase(node, st.QUEUED)
        self._ensure_row(node, "pending")
        self.runnable.append(node)

    def _submit(self, node: Node) -> None:
        if node.phase is not st.QUEUED:
            return
        row = node.row
        assert row is not None
        if self.executor.reports_start:
            self._set_phase(node, st.SUBMITTED)  # running once the executor starts it
        else:
            row["status"] = "running"
            row["started_at"] = time.time()
            self.recorder.task_run_changed(row)
            self._set_phase(node, st.RUNNING)
        self.running[row["id"]] = node
        args, kwargs = node.task.unbind(node.resolved)
        self.executor.submit(Job(row["id"], node.task, args, kwargs))

    def _job_starting(self, job: Job) -> None:
        """An in-process executor is about to run ``job``: it is running now."""
        node = self.running.get(job.id)
        if node is not None and node.row is not None:
            self._set_phase(node, st.RUNNING)
            node.row["status"] = "running"
            node.row["started_at"] = time.time()
            self.recorder.task_run_changed(node.row)
        if self.recorder.due():  # progress is reported from the loop, between batches
            self.recorder.flush(final=False)

    def _on_outcome(self, outcome: Outcome, expand: bool = True) -> None:
        node = self.running.pop(outcome.job_id, None)
        if node is None or node.phase is not st.RUNNING:
            return
        row = node.row
        assert row is not None
        row["started_at"] = outcome.started_at or row["started_at"]
        row["duration"] = outcome.duration
        row["ended_at"] = (outcome.started_at or row["started_at"]) + outcome.duration
        row["worker"] = outcome.worker or None
        if outcome.logs:
            self.recorder.logs(
                (self.run_id, row["id"], t, level, name, message)
                for t, level, name, message in outcome.logs
            )
        if outcome.error is not None:
            if node.attempt <= node.task.retries and not self.interrupted:
                self._retry(node, outcome.error)
            else:
                self._fail(node, outcome.error)
            return
        if self.written is not None:
            self.written.wrote(node, outcome.written)
        value = outcome.value
        if type(value) is StoredResult:  # recorded by the worker: its rows, not the value
            self._finish_done(node, value)
            return
        calls = find_calls(value) if type(value) not in ATOMS else None
        if not calls:
            self._finish_done(node, value)
            return
        if not expand:
            return
        node.returned = value
        self._set_phase(node, st.EXPANDING)
        awaiting = 0
        for child in self.discover(calls, parent=node):
            if child.phase in st.HAS_VALUE:
                continue
            if child.final:
                self._skip(node, child)
                self._cascade(node)
                return
            if child.expected_by is None:
                child.expected_by = node
                awaiting += 1
            else:
                child.followers.append(Relay(node))  # type: ignore[arg-type]
                awaiting += 1
        node.awaiting = awaiting
        if awaiting == 0:
            self._finish_expanded(node)

    # -- finishing ---------------------------------------------------------------------

    def _finish_done(self, node: Node, value: Any) -> None:
        values = self.values
        try:
            digest = values.hash(value)
            values.record(value, digest)
        except Exception as exc:
            error = serialisation_error(node.task.fullname, exc)
            info = error_info(error, skip_frames=0)
            self._fail(node, ErrorInfo(info.type, error.message, info.traceback))
            return
        values.known(value, digest)
        now = time.time()
        call_hash = combine(node.task_hash, node.args_hash, digest)
        edges = [c.call_hash for c in node.children if c.call_hash is not None]
        self.recorder.call((call_hash, node.task_hash, node.args_hash, digest, now), edges)
        if self.written is not None:
            self.written.finished(node, call_hash, self.recorder)
        if node.task.cache:
            self.recorder.cache_entry(
                (node.task_hash, node.args_hash, call_hash, digest, self.run_id, now)
            )
            self._release_claim(node)
        row = node.row
        assert row is not None
        row["status"] = st.DONE
        row["value_hash"] = digest
        row["call_hash"] = call_hash
        self.recorder.task_run_changed(row)
        node.value = value
        node.value_hash = digest
        node.call_hash = call_hash
        node.resolved = ()  # the arguments are recorded; let them go
        self._set_phase(node, st.DONE)
        self.settling.append(node)

    def _finish_expanded(self, node: Node) -> None:
        try:
            self.graph.materialize_calls(node.returned)
            value = substitute(node.returned, self._result_of)
        except Exception as exc:  # a cached result could not be read back
            self._fail(node, error_info(exc, skip_frames=0))
            return
        node.returned = None
        self._finish_done(node, value)

    def _finish_cached(
        self,
        node: Node,
        value: Any,
        value_hash: str | None,
        call_hash: str | None,
        source: str | None,
    ) -> None:
        row = self._ensure_row(node, st.CACHED)
        now = time.time()
        row.update(
            status=st.CACHED, value_hash=value_hash, call_hash=call_hash, cached_from=source,
            started_at=row["started_at"] or now, ended_at=now, duration=0.0,
        )  # fmt: skip
        self.recorder.task_run_changed(row)
        node.value = value
        node.value_hash = value_hash
        node.call_hash = call_hash
        self._set_phase(node, st.CACHED)
        self.settling.append(node)

    def _settle(self) -> None:
        """Wake what waited on nodes whose value is now known (iteratively)."""
        queue = self.settling
        ready = self.ready
        while queue:
            node = queue.popleft()
            for dep in node.dependents:
                if dep.phase is st.WAITING:
                    dep.waiting -= 1
                    if dep.waiting == 0:
                        dep.phase = st.READY
                        ready.append(dep)
            node.dependents = []
            for follower in node.followers:
                if isinstance(follower, Relay):
                    follower.notify(self)
                elif not follower.final:
                    self._finish_cached(
                        follower, node.value, node.value_hash, node.call_hash, self.run_id
                    )
            node.followers = []
            parent = node.expected_by
            if parent is not None and parent.phase is st.EXPANDING:
                parent.awaiting -= 1
                if parent.awaiting == 0:
                    self._finish_expanded(parent)

    # -- the end -----------------------------------------------------------------------

    def finish_unfinished(self) -> None:
        """Skip nodes left waiting (only possible after a failure cut their inputs)."""
        for node in self.order:
            if not node.final:
                self._set_phase(node, st.SKIPPED)
                row = self._ensure_row(node, st.SKIPPED)
                row["status"] = st.SKIPPED
                self.recorder.task_run_changed(row)
