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

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerflow.config import Settings
from ledgerflow.db import Database, bulk_insert
from ledgerflow.hashing import hash_bytes
from ledgerflow.ledger.schema import (
    Argument,
    CallEdge,
    CallRow,
    FileRow,
    LogRecord,
    Run,
    Tag,
    TaskDef,
    TaskRun,
    Value,
    ValueEdge,
)

_ORDER = (TaskDef, Value, ValueEdge, Argument, CallRow, CallEdge, FileRow, Run, TaskRun, LogRecord, Tag)


def _digest(*parts: Any) -> str:
    return hash_bytes("\x1f".join(map(str, parts)).encode())


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
        content_hash = hash_bytes(content.encode())
        file_hash = _digest("file", path, content_hash)
        if self._once(Value, file_hash):
            self.rows[Value].append({
                "hash": file_hash, "type_name": "File", "format": "file",
                "preview": f"File(path={path})"[:255], "size": len(content), "inline": None,
                "created_at": at or self.now,
            })
            self.rows[FileRow].append({
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
        if self._once(CallRow, call_hash):
            self.rows[CallRow].append({
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
        fixed_id: str | None = None,
    ) -> str:
        run_id = fixed_id or self.new_id()
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
        fixed_id: str | None = None,
    ) -> str:
        task_run_id = fixed_id or self.new_id()
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
                        counts[model.__table__.name] = bulk_insert(session, model, rows)
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
        status = _pick_run_status(r, runs)
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
    _analyze(settings)
    return Workload(
        runs=runs + 1, calls=rows.get("lf_call", 0), task_runs=rows.get("lf_task_run", 0), rows=rows,
        deep_value=deep, chain_run=chain_run, shared_file=ref, shared_path="data/ref.fa",
        failed_task_runs=failed, run_ids=run_ids,
    )


def _analyze(settings: Settings | Database) -> None:
    """Refresh PostgreSQL's planner statistics, as autovacuum would after a bulk load."""
    database = settings if isinstance(settings, Database) else Database(settings)
    try:
        engine = database.engine()
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                for table in _ORDER:
                    conn.exec_driver_sql(f"ANALYZE {table.__table__.name}")
                conn.commit()
    finally:
        if database is not settings:
            database.dispose()


def _pick_run_status(r: int, runs: int) -> str:
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


@dataclass(frozen=True)
class ExampleLedger:
    """Handles on the records :func:`write_example_ledger` wrote (ids and hashes by name)."""

    now: datetime
    runs: dict[str, str]  # old, cached, failed, running, merge
    task_runs: dict[str, str]
    calls: dict[str, str]
    values: dict[str, str]


def write_example_ledger(settings: Settings | Database, *, now: datetime | None = None) -> ExampleLedger:
    """A small ledger with a known shape, for tests and documentation.

    Run ``old`` (3 days ago, tag env=prod) is the redun-style genomics pipeline::

        main(fastqs, ref) -> align_all(fastqs, ref) -> align(fastq, ref)        x2
                          -> call_all(bams, ref)    -> call_variants(bam, ref)  x2

    ``cached`` (1 day ago) took all of it from the cache; ``failed`` (2 hours ago, env=dev)
    has a failing ``call_variants`` (logged, with a traceback) and a skipped ``summarize``;
    ``running`` (5 minutes ago) is still going; ``merge`` (4 days ago) is a DAG where one
    value feeds two branches that meet again: ``merge()`` returns ``task3(task1(v), task2(v))``
    with ``v = task0()``.
    Run ids start with ``aaaa``, ``aaab``, ``bbbb``, ``cccc``, ``dddd``.
    """
    writer = LedgerWriter(now=now, seed=7)
    now = writer.now
    t = {name: writer.task(name, params) for name, params in {
        "main": ("fastqs", "ref"), "align_all": ("fastqs", "ref"), "call_all": ("bams", "ref"),
        "align": ("fastq", "ref"), "call_variants": ("bam", "ref"), "summarize": ("vcf",),
        "task0": (), "task1": ("a",), "task2": ("b",), "task3": ("c", "d"),
    }.items()}
    v: dict[str, str] = {"ref": writer.file("data/ref.fa", "ACGTACGT", at=now - timedelta(days=9))}
    for i in (1, 2, 3):
        v[f"fq{i}"] = writer.file(f"data/s{i}.fastq", f"reads {i}", at=now - timedelta(days=9))
        v[f"bam{i}"] = writer.file(f"out/s{i}.bam", f"aligned {i}", at=now - timedelta(days=3))
        v[f"vcf{i}"] = writer.file(f"out/s{i}.vcf", f"variants {i}", at=now - timedelta(days=3))
    v["fastqs"] = writer.container([v["fq1"], v["fq2"]])
    v["bams"] = writer.container([v["bam1"], v["bam2"]])
    v["vcfs"] = writer.container([v["vcf1"], v["vcf2"]])
    old_at = now - timedelta(days=3)
    c: dict[str, str] = {"main": writer.call(t["main"], {"fastqs": v["fastqs"], "ref": v["ref"]}, v["vcfs"], at=old_at)}
    c["align_all"] = writer.call(t["align_all"], {"fastqs": v["fastqs"], "ref": v["ref"]}, v["bams"],
                                 parent=c["main"], at=old_at)
    c["call_all"] = writer.call(t["call_all"], {"bams": v["bams"], "ref": v["ref"]}, v["vcfs"],
                                parent=c["main"], at=old_at)
    for i in (1, 2):
        c[f"align{i}"] = writer.call(t["align"], {"fastq": v[f"fq{i}"], "ref": v["ref"]}, v[f"bam{i}"],
                                     parent=c["align_all"], at=old_at)
        c[f"call{i}"] = writer.call(t["call_variants"], {"bam": v[f"bam{i}"], "ref": v["ref"]},
                                    v[f"vcf{i}"], parent=c["call_all"], at=old_at)
    runs = {"old": "aaaa0001" + "0" * 24, "cached": "aaab0002" + "0" * 24, "failed": "bbbb0003" + "0" * 24,
            "running": "cccc0004" + "0" * 24, "merge": "dddd0005" + "0" * 24}
    trs: dict[str, str] = {}
    task_of = {"main": "main", "align_all": "align_all", "align1": "align", "align2": "align",
               "call_all": "call_all", "call1": "call_variants", "call2": "call_variants"}
    parent_of = {"align_all": "main", "call_all": "main", "align1": "align_all", "align2": "align_all",
                 "call1": "call_all", "call2": "call_all"}
    for run in ("old", "cached"):
        at = now - timedelta(days=3 if run == "old" else 1)
        writer.run("pipeline.main", fixed_id=runs[run], started_at=at, seconds=12.5, root_call=c["main"],
                   arguments={"fastqs": "[2 File]", "ref": "File('data/ref.fa')"})
        for k, (name, task) in enumerate(task_of.items()):
            trs[f"{run}.{name}"] = writer.task_run(
                runs[run], t[task], c[name], task_name=f"pipeline.{task}",
                status="done" if run == "old" else "cached",
                parent_id=trs.get(f"{run}.{parent_of.get(name)}"),
                started_at=at + timedelta(seconds=k), seconds=1.0 + k,
                cached_from=runs["old"] if run == "cached" else None,
            )
    writer.log(runs["old"], trs["old.align1"], "aligned 120 reads", at=old_at + timedelta(seconds=2))
    writer.tag(runs["old"], "run", "env", "prod")

    fail_at = now - timedelta(hours=2)
    writer.run("pipeline.main", fixed_id=runs["failed"], status="failed", started_at=fail_at, seconds=3)
    top = writer.task_run(runs["failed"], t["main"], None, status="failed", task_name="pipeline.main",
                          args_hash=writer.arguments({"fastqs": v["fq3"], "ref": v["ref"]}),
                          started_at=fail_at, seconds=3, error=("RuntimeError", "1 task failed"))
    c["align3"] = writer.call(t["align"], {"fastq": v["fq3"], "ref": v["ref"]}, v["bam3"], at=fail_at)
    trs["failed.main"] = top
    trs["failed.align3"] = writer.task_run(runs["failed"], t["align"], c["align3"], task_name="pipeline.align",
                                           parent_id=top, started_at=fail_at, seconds=1.0)
    trs["failed.call3"] = writer.task_run(
        runs["failed"], t["call_variants"], None, status="failed", task_name="pipeline.call_variants",
        parent_id=top, args_hash=writer.arguments({"bam": v["bam3"], "ref": v["ref"]}),
        started_at=fail_at + timedelta(seconds=1), seconds=0.5,
        error=("ValueError", "no reads pass the quality filter in out/s3.bam"),
    )
    trs["failed.summarize3"] = writer.task_run(
        runs["failed"], t["summarize"], None, status="skipped", task_name="pipeline.summarize",
        parent_id=top, args_hash=writer.arguments({"vcf": v["vcf3"]}),
    )
    writer.log(runs["failed"], trs["failed.call3"], "reading out/s3.bam", at=fail_at + timedelta(seconds=1))
    writer.log(runs["failed"], trs["failed.call3"], "no reads pass the quality filter", level="ERROR",
               at=fail_at + timedelta(seconds=1.2))
    writer.tag(runs["failed"], "run", "env", "dev")

    run_at = now - timedelta(minutes=5)
    writer.run("pipeline.main", fixed_id=runs["running"], status="running", started_at=run_at)
    writer.rows[Run][-1]["heartbeat_at"] = now
    trs["running.main"] = writer.task_run(runs["running"], t["main"], None, status="running",
                                          task_name="pipeline.main", started_at=run_at,
                                          args_hash=writer.arguments({"fastqs": v["fastqs"], "ref": v["ref"]}))
    trs["running.align1"] = writer.task_run(runs["running"], t["align"], None, status="pending",
                                            task_name="pipeline.align", parent_id=trs["running.main"],
                                            args_hash=writer.args_hash(c["align1"]))

    merge_at = now - timedelta(days=4)
    v["m0"], v["m1"], v["m2"] = writer.value("shared"), writer.value("left"), writer.value("right")
    v["m3"] = writer.value("merged")
    merge = writer.task("merge", ())
    c["merge"] = writer.call(merge, [], v["m3"], at=merge_at)
    c["task0"] = writer.call(t["task0"], [], v["m0"], parent=c["merge"], at=merge_at)
    c["task1"] = writer.call(t["task1"], [v["m0"]], v["m1"], parent=c["merge"], at=merge_at)
    c["task2"] = writer.call(t["task2"], [v["m0"]], v["m2"], parent=c["merge"], at=merge_at)
    c["task3"] = writer.call(t["task3"], [v["m1"], v["m2"]], v["m3"], parent=c["merge"], at=merge_at)
    writer.run("pipeline.merge", fixed_id=runs["merge"], started_at=merge_at, root_call=c["merge"])
    trs["merge.merge"] = writer.task_run(runs["merge"], merge, c["merge"], task_name="pipeline.merge",
                                         started_at=merge_at)
    for k, name in enumerate(("task0", "task1", "task2", "task3")):
        trs[f"merge.{name}"] = writer.task_run(runs["merge"], t[name], c[name], task_name=f"pipeline.{name}",
                                               parent_id=trs["merge.merge"],
                                               started_at=merge_at + timedelta(seconds=k + 1))
    writer.write(settings)
    return ExampleLedger(now=now, runs=runs, task_runs=trs, calls=c, values=v)
