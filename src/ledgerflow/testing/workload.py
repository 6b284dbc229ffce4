"""Synthetic ledgers: realistic records written fast, for tests and benchmarks.

:class:`LedgerWriter` builds content-addressed rows (task definitions, values, files,
arguments, calls, call edges) and runs, task runs, log records and tags in memory, then
writes them with :func:`ledgerflow.db.bulk_insert`. :func:`generate_workload` uses it to
write ``calls`` calls spread over runs in every state, with a shared reference file (so
dataflows are DAGs) and one chain of ``depth`` dependent calls::

    from ledgerflow.testing.workload import generate_workload
    info = generate_workload(settings, calls=100_000, depth=20)
    ledger.dataflow(info.deep_value)       # a value `depth` levels deep

The database must already hold the ledger tables (``ledgerflow db upgrade``).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerflow.config import Settings
from ledgerflow.db import Database, bulk_insert
from ledgerflow.ledger.schema import (
    Argument,
    Call,
    CallEdge,
    File,
    LogRecord,
    Run,
    Tag,
    TaskDef,
    TaskRun,
    Value,
    ValueEdge,
)

_ORDER = (TaskDef, Value, ValueEdge, Argument, Call, CallEdge, File, Run, TaskRun, LogRecord, Tag)


def _digest(*parts: Any) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()


class LedgerWriter:
    """Ledger rows built in memory, written in bulk by :meth:`write`."""

    def __init__(self, *, now: datetime | None = None, seed: int = 0) -> None:
        self.now = now or datetime.now(UTC)
        self.random = random.Random(seed)
        self.rows: dict[type, list[dict[str, Any]]] = {model: [] for model in _ORDER}
        self._seen: set[tuple[type, str]] = set()
        self._call_value: dict[str, str] = {}
        self._call_args: dict[str, str] = {}
        self._children: dict[str, int] = {}

    def _once(self, model: type, key: str) -> bool:
        if (model, key) in self._seen:
            return False
        self._seen.add((model, key))
        return True

    def new_id(self) -> str:
        return f"{self.random.getrandbits(128):032x}"

    # -- content-addressed records -------------------------------------------------------

    def task(self, name: str, params: tuple[str, ...] = ("x",), *, version: str | None = None) -> str:
        source = f"@task\ndef {name}({', '.join(params)}):\n    ...\n"
        task_hash = _digest("task", name, version, source)
        if self._once(TaskDef, task_hash):
            self.rows[TaskDef].append({
                "hash": task_hash, "name": name, "namespace": "", "version": version,
                "module": "pipeline", "source": source, "created_at": self.now,
            })
        return task_hash

    def value(self, obj: Any, *, preview: str | None = None, type_name: str | None = None) -> str:
        text = json.dumps(obj, sort_keys=True, default=str)
        value_hash = _digest("value", type(obj).__name__, text)
        if self._once(Value, value_hash):
            self.rows[Value].append({
                "hash": value_hash, "type_name": type_name or type(obj).__name__, "format": "json",
                "preview": (preview or repr(obj))[:255], "size": len(text), "inline": text.encode(),
                "created_at": self.now,
            })
        return value_hash

    def container(self, items: list[str], *, preview: str | None = None) -> str:
        """A list value holding the given values (recorded with value edges)."""
        value_hash = _digest("list", *items)
        if self._once(Value, value_hash):
            self.rows[Value].append({
                "hash": value_hash, "type_name": "list", "format": "json",
                "preview": (preview or f"[{len(items)} items]")[:255], "size": len(items),
                "inline": None, "created_at": self.now,
            })
            for position, item in enumerate(items):
                self.rows[ValueEdge].append(
                    {"parent_hash": value_hash, "position": str(position), "child_hash": item}
                )
        return value_hash

    def file(self, path: str, content: str = "", *, at: datetime | None = None) -> str:
        """A ``File`` value and its ``lf_file`` row (same hash)."""
        content_hash = hashlib.sha256(content.encode()).hexdigest()
        file_hash = _digest("file", path, content_hash)
        if self._once(Value, file_hash):
            self.rows[Value].append({
                "hash": file_hash, "type_name": "File", "format": "file",
                "preview": f"File(path={path})"[:255], "size": len(content), "inline": None,
                "created_at": at or self.now,
            })
            self.rows[File].append({
                "hash": file_hash, "path": path, "content_hash": content_hash,
                "size": len(content), "mtime": (at or self.now).timestamp(),
                "created_at": at or self.now,
            })
        return file_hash

    def arguments(self, args: list[str] | dict[str, str]) -> str:
        """The ``args_hash`` of argument values (a positional list or keywords)."""
        items = list(args.items()) if isinstance(args, dict) else [(None, a) for a in args]
        args_hash = _digest("args", *(f"{k}:{v}" for k, v in items))
        if self._once(Argument, args_hash):
            for position, (key, value_hash) in enumerate(items):
                self.rows[Argument].append(
                    {"args_hash": args_hash, "position": position, "key": key, "value_hash": value_hash}
                )
        return args_hash

    def call(
        self, task: str, args: list[str] | dict[str, str], result: str, *, parent: str | None = None,
        at: datetime | None = None,
    ) -> str:
        """A call of ``task`` on argument values (positional list or keywords) returning ``result``."""
        args_hash = self.arguments(args)
        call_hash = _digest("call", task, args_hash, result)
        if self._once(Call, call_hash):
            self.rows[Call].append({
                "hash": call_hash, "task_hash": task, "args_hash": args_hash, "value_hash": result,
                "created_at": at or self.now,
            })
            self._call_value[call_hash] = result
            self._call_args[call_hash] = args_hash
        if parent is not None and self._once(CallEdge, f"{parent}:{call_hash}"):
            position = self._children.get(parent, 0)
            self._children[parent] = position + 1
            self.rows[CallEdge].append({"parent_hash": parent, "position": position, "child_hash": call_hash})
        return call_hash

    @property
    def calls_made(self) -> dict[str, str]:
        """Result value of every call built so far, by call hash."""
        return self._call_value

    def args_hash(self, call_hash: str) -> str:
        return self._call_args[call_hash]

    # -- what happened ---------------------------------------------------------------------

    def run(
        self, entry_task: str, *, status: str = "done", started_at: datetime | None = None,
        seconds: float = 10.0, arguments: dict[str, Any] | None = None, root_call: str | None = None,
    ) -> str:
        run_id = self.new_id()
        started = started_at or self.now
        self.rows[Run].append({
            "id": run_id, "status": status, "entry_task": entry_task,
            "arguments": json.dumps(arguments or {}, sort_keys=True),
            "command_line": f"ledgerflow run pipeline:{entry_task}", "started_at": started,
            "ended_at": None if status == "running" else started + timedelta(seconds=seconds),
            "heartbeat_at": started + timedelta(seconds=seconds), "host": "worker-1", "user": "ana",
            "pid": 4242, "executor": "local", "config_hash": None, "code_version": None,
            "library_version": "0.1.0", "root_call_hash": root_call,
            "result_hash": self._call_value.get(root_call or ""),
        })
        return run_id

    def task_run(
        self, run_id: str, task: str, call: str | None, *, status: str = "done",
        task_name: str = "task", parent_id: str | None = None, args_hash: str | None = None,
        started_at: datetime | None = None, seconds: float | None = 0.5,
        error: tuple[str, str] | None = None, cached_from: str | None = None,
    ) -> str:
        task_run_id = self.new_id()
        started = None if status in ("pending", "skipped") else (started_at or self.now)
        finished = status in ("done", "cached", "failed", "interrupted")
        self.rows[TaskRun].append({
            "id": task_run_id, "run_id": run_id, "parent_id": parent_id, "task_hash": task,
            "task_name": task_name, "args_hash": args_hash or (self.args_hash(call) if call else ""),
            "call_hash": call if status in ("done", "cached") else None,
            "value_hash": self._call_value.get(call or "") if status in ("done", "cached") else None,
            "status": status, "attempt": 1, "cached_from": cached_from,
            "started_at": started,
            "ended_at": started + timedelta(seconds=seconds or 0) if started and finished else None,
            "duration": seconds if started and finished and status != "cached" else None,
            "worker": "worker-1" if started else None,
            "exception_type": error[0] if error else None,
            "exception_message": error[1] if error else None,
            "traceback": f"Traceback (most recent call last):\n  ...\n{error[0]}: {error[1]}" if error else None,
        })
        return task_run_id

    def log(self, run_id: str, task_run_id: str | None, message: str, *, level: str = "INFO",
            at: datetime | None = None) -> None:
        self.rows[LogRecord].append({
            "run_id": run_id, "task_run_id": task_run_id, "created_at": at or self.now,
            "level": level, "logger": "pipeline", "message": message,
        })

    def tag(self, entity_id: str, kind: str, key: str, value: str) -> None:
        if self._once(Tag, f"{entity_id}:{key}:{value}"):
            self.rows[Tag].append({
                "entity_id": entity_id, "key": key, "value": value, "entity_kind": kind,
                "created_at": self.now,
            })

    def write(self, settings: Settings | Database) -> dict[str, int]:
        """Insert every row built so far (one transaction); rows per table."""
        database = settings if isinstance(settings, Database) else Database(settings)
        counts: dict[str, int] = {}
        try:
            with database.transaction() as session:
                for model in _ORDER:
                    rows = self.rows[model]
                    if rows:
                        counts[model.__tablename__] = bulk_insert(session, model, rows)
        finally:
            if database is not settings:
                database.dispose()
        self.rows = {model: [] for model in _ORDER}
        return counts


@dataclass(frozen=True)
class Workload:
    """What :func:`generate_workload` wrote, and handles on notable records."""

    runs: int
    calls: int
    task_runs: int
    rows: dict[str, int]
    deep_value: str  # the last value of the chain, ``depth`` calls deep
    chain_run: str
    shared_file: str  # hash of the reference file every run uses
    shared_path: str
    failed_task_runs: int
    run_ids: list[str] = field(repr=False, default_factory=list)


def generate_workload(
    settings: Settings | Database,
    *,
    calls: int = 100_000,
    runs: int | None = None,
    depth: int = 20,
    seed: int = 0,
    now: datetime | None = None,
) -> Workload:
    """Write a synthetic ledger of about ``calls`` calls (default one run per 10 calls).

    Each run aligns samples (``align`` -> ``call_variants`` -> ``summarize``, File values,
    all using one shared reference file) under an entry ``main``; about 10% of runs fail
    (a failed task, its dependant skipped), 3% are interrupted, the last two are running,
    every fifth run is served from the cache of the previous one. One more run holds a
    chain of ``depth`` dependent ``step`` calls ending in ``Workload.deep_value``.
    """
    writer = LedgerWriter(now=now, seed=seed)
    now = writer.now
    runs = runs or max(1, calls // 10)
    main = writer.task("main", ("samples", "ref"))
    align = writer.task("align", ("fastq", "ref"))
    call_variants = writer.task("call_variants", ("bam", "ref"))
    summarize = writer.task("summarize", ("vcf",))
    ref = writer.file("data/ref.fa", "ACGT" * 8, at=now - timedelta(days=30))
    run_ids: list[str] = []
    failed = 0
    previous: tuple[int, str, int] | None = None
    for r in range(runs):
        started = now - timedelta(minutes=runs - r)
        status = _run_status(r, runs)
        source = previous[0] if (r % 5 == 4 and previous and status == "done") else r
        cached = source != r
        if not cached:
            budget = calls * (r + 1) // runs - len(writer.calls_made) - 1
            triples = max(1, round(budget / 3))
        else:
            triples = previous[2] if previous else 1
        fastqs = [writer.file(f"data/run{source}/s{j}.fastq", f"reads {source} {j}", at=started)
                  for j in range(triples)]
        samples = writer.container(fastqs, preview=f"[{triples} File]")
        steps = []
        for j, fastq in enumerate(fastqs):
            bam = writer.file(f"out/run{source}/s{j}.bam", f"align {source} {j}", at=started)
            vcf = writer.file(f"out/run{source}/s{j}.vcf", f"calls {source} {j}", at=started)
            steps.append((fastq, bam, vcf, writer.value(source * 1000 + j)))
        result = writer.container([s[3] for s in steps])
        root = writer.call(main, [samples, ref], result, at=started) if status == "done" else None
        run_id = writer.run("main", status=status, started_at=started, root_call=root,
                            arguments={"samples": f"[{triples} files]", "ref": "data/ref.fa"})
        if status == "running":
            writer.rows[Run][-1]["heartbeat_at"] = now
        run_ids.append(run_id)
        writer.tag(run_id, "run", "env", "prod" if r % 3 == 0 else "dev")
        top = writer.task_run(run_id, main, root, args_hash=writer.arguments([samples, ref]),
                              task_name="main", status="cached" if cached else status,
                              started_at=started, seconds=5.0, cached_from=run_ids[source] if cached else None,
                              error=("RuntimeError", "a task failed") if status == "failed" else None)
        if status == "failed":
            failed += 1
        at = started
        for j, (fastq, bam, vcf, summary) in enumerate(steps):
            at += timedelta(milliseconds=10)
            plan = [(align, "align", [fastq, ref], bam), (call_variants, "call_variants", [bam, ref], vcf),
                    (summarize, "summarize", [vcf], summary)]
            states = _step_states(status, j, triples, cached)
            for (task, name, args, out), state in zip(plan, states, strict=True):
                call = writer.call(task, args, out, parent=root, at=at) if state in ("done", "cached") else None
                error = ("ValueError", f"bad quality in sample {j}") if state == "failed" else None
                tr = writer.task_run(
                    run_id, task, call, status=state, task_name=name, parent_id=top,
                    args_hash=writer.arguments(args), started_at=at, seconds=0.2, error=error,
                    cached_from=run_ids[source] if state == "cached" else None,
                )
                if state == "failed":
                    failed += 1
                    writer.tag(tr, "task_run", "triage", "open")
                    writer.log(run_id, tr, f"sample {j} failed quality checks", level="ERROR", at=at)
                elif name == "align" and state == "done":
                    writer.log(run_id, tr, f"aligned {100 + j} reads", at=at)
        if status == "done" and not cached:
            previous = (r, run_id, triples)
    chain_run, deep = _chain(writer, depth, now)
    rows = writer.write(settings)
    return Workload(
        runs=runs + 1, calls=rows.get("lf_call", 0), task_runs=rows.get("lf_task_run", 0), rows=rows,
        deep_value=deep, chain_run=chain_run, shared_file=ref, shared_path="data/ref.fa",
        failed_task_runs=failed, run_ids=run_ids,
    )


def _run_status(r: int, runs: int) -> str:
    if r >= runs - 2 and runs > 4:
        return "running"
    if r % 10 == 7:
        return "failed"
    if r % 33 == 32:
        return "interrupted"
    return "done"


def _step_states(status: str, j: int, triples: int, cached: bool) -> tuple[str, str, str]:
    if cached:
        return ("cached", "cached", "cached")
    if status == "failed" and j == 0:
        return ("done", "failed", "skipped")
    if status == "interrupted" and j == triples - 1:
        return ("done", "interrupted", "skipped")
    if status == "running" and j == triples - 1:
        return ("done", "running", "pending")
    return ("done", "done", "done")


def _chain(writer: LedgerWriter, depth: int, now: datetime) -> tuple[str, str]:
    """A run whose entry task chains ``depth`` ``step`` calls; the run id and the last value."""
    step = writer.task("step", ("x", "k"))
    chain = writer.task("chain", ("start", "depth"))
    start, size = writer.value("chain-start"), writer.value(depth)
    values = [start]
    for k in range(1, depth + 1):
        values.append(writer.value(f"chain-{k}-of-{depth}"))
    root = writer.call(chain, [start, size], values[-1], at=now)
    run_id = writer.run("chain", started_at=now, root_call=root, arguments={"depth": depth})
    top = writer.task_run(run_id, chain, root, task_name="chain", started_at=now)
    for k in range(1, depth + 1):
        call = writer.call(step, [values[k - 1], writer.value(k)], values[k], parent=root, at=now)
        writer.task_run(run_id, step, call, task_name="step", parent_id=top, started_at=now)
    return run_id, values[-1]
