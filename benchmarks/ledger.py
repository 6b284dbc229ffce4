"""Reading and moving a large ledger, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/ledger.py [--calls 100000] [--depth 20] [--repeats 5]
                                          [--dialect all|sqlite|postgresql]

Generates a ledger of ``--calls`` calls (``ledgerflow.testing.workload``: one run per ten
calls, so 10,000 runs for 100,000 calls, plus a chain ``--depth`` calls deep), then prints,
each against its target:

* ``dataflow`` of the value at the end of the chain (``Ledger.dataflow``);
* the first page of ``runs`` (``Ledger.runs``) over every run;
* ``query --status failed`` (``Ledger.query(status="failed")``);
* export of the whole ledger to JSON lines, then import into a fresh migrated database of
  the same dialect: records per second over both (and each alone);
* push from the SQLite ledger into the PostgreSQL one, when both dialects run;
* (no target) a dry-run prune of the older half of the runs.

Read figures are medians over ``--repeats`` after one warm-up call; on PostgreSQL the
generated ledger is ANALYZEd first, as autovacuum would soon do. PostgreSQL comes from
``LEDGERFLOW_TEST_PG`` or the server on 127.0.0.1:5432: the benchmark makes scratch
databases (with admin and user roles) and drops them at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from ledgerflow import migrations
from ledgerflow.config import Settings, settings_from_mapping
from ledgerflow.db import Database
from ledgerflow.provenance.exchange import export, import_, push
from ledgerflow.provenance.ledger import Ledger
from ledgerflow.provenance.prune import prune
from ledgerflow.testing.postgres import find_server
from ledgerflow.testing.workload import generate_workload

READ_TARGET_S = 0.3
EXCHANGE_TARGET = 20_000  # records/s, export + import


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: connections, statement caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextmanager
def scratch_entry(dialect: str, folder: Path, name: str) -> Iterator[dict[str, Any]]:
    """A ``databases:`` entry for an empty database, removed afterwards."""
    if dialect == "sqlite":
        yield {"dialect": "sqlite", "path": str(folder / f"{name}.db")}
        return
    server = find_server()
    if server is None:
        raise SystemExit("no PostgreSQL server found (set LEDGERFLOW_TEST_PG)")
    database = server.create_database(prefix=f"lf_bench_{name}")
    try:
        yield database.config_entry()
    finally:
        database.drop()


def project(folder: Path, name: str, databases: dict[str, dict[str, Any]]) -> Settings:
    root = folder / name
    root.mkdir(parents=True, exist_ok=True)
    settings = settings_from_mapping({"databases": databases}, path=root / "ledgerflow.yml")
    migrations.upgrade(settings)
    return settings


def analyze(settings: Settings) -> None:
    database = Database(settings, role="admin")
    try:
        with database.engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        database.dispose()


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def bench_dialect(dialect: str, args: argparse.Namespace, folder: Path, stack: ExitStack) -> Settings:
    entry = stack.enter_context(scratch_entry(dialect, folder, "source"))
    settings = project(folder, f"{dialect}-source", {"default": entry})
    started = time.perf_counter()
    work = generate_workload(settings, calls=args.calls, depth=args.depth)
    print(f"\n[{dialect}] generated {work.calls:,} calls, {work.runs:,} runs, "
          f"{work.task_runs:,} task runs in {time.perf_counter() - started:.1f} s")
    if dialect == "postgresql":
        analyze(settings)  # what autovacuum does soon after a bulk load

    with Ledger.open(settings) as ledger:
        flow = median_time(lambda: ledger.dataflow(work.deep_value), args.repeats)
        runs = median_time(lambda: ledger.runs(limit=50), args.repeats)
        failed = median_time(lambda: ledger.query(status="failed"), args.repeats)
        shown = len(ledger.runs(limit=50))
    print(f"  dataflow of a value {args.depth} levels deep   {flow * 1000:8.1f} ms   "
          f"(target <= {READ_TARGET_S * 1000:.0f} ms: {verdict(flow <= READ_TARGET_S)})")
    print(f"  runs, first page ({shown} of {work.runs:,})      {runs * 1000:8.1f} ms   "
          f"(target <= {READ_TARGET_S * 1000:.0f} ms: {verdict(runs <= READ_TARGET_S)})")
    print(f"  query --status failed              {failed * 1000:8.1f} ms   "
          f"(target <= {READ_TARGET_S * 1000:.0f} ms: {verdict(failed <= READ_TARGET_S)})")

    half = timedelta(minutes=work.runs // 2)  # runs start a minute apart
    started = time.perf_counter()
    pruned = prune(settings, half, dry_run=True)
    elapsed = time.perf_counter() - started
    print(f"  prune --dry-run of {len(pruned.run_ids):,} runs      {elapsed:8.1f} s    "
          f"({pruned.total:,} records; no target)")

    path = folder / f"{dialect}.jsonl"
    started = time.perf_counter()
    count = export(settings, out=path)
    exported = time.perf_counter() - started
    target_entry = stack.enter_context(scratch_entry(dialect, folder, "target"))
    target = project(folder, f"{dialect}-target", {"default": target_entry})
    started = time.perf_counter()
    report = import_(target, path)
    imported = time.perf_counter() - started
    assert report.total_added == count, (report.total_added, count)
    rate = count / (exported + imported)
    size = path.stat().st_size / 1e6
    print(f"  export {count:,} records ({size:.0f} MB)   {count / exported:10,.0f} records/s")
    print(f"  import into an empty ledger         {count / imported:10,.0f} records/s")
    print(f"  export + import                     {rate:10,.0f} records/s   "
          f"(target >= {EXCHANGE_TARGET:,}: {verdict(rate >= EXCHANGE_TARGET)})")
    return settings


def bench_push(sources: dict[str, Settings], folder: Path, stack: ExitStack) -> None:
    entry = stack.enter_context(scratch_entry("postgresql", folder, "team"))
    project(folder, "team", {"default": entry})
    laptop = sources["sqlite"]
    settings = settings_from_mapping(
        {"databases": {"default": {"dialect": "sqlite", "path": str(laptop.default.path)},
                       "team": entry}},
        path=folder / "push" / "ledgerflow.yml",
    )
    started = time.perf_counter()
    report = push(settings, "team")
    elapsed = time.perf_counter() - started
    print(f"\n[push sqlite -> postgresql] {report.total_added:,} records in {elapsed:.1f} s: "
          f"{report.total_added / elapsed:,.0f} records/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dialect", choices=("all", "sqlite", "postgresql"), default="all")
    args = parser.parse_args()
    dialects = ("sqlite", "postgresql") if args.dialect == "all" else (args.dialect,)
    with tempfile.TemporaryDirectory(prefix="lf-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        sources = {dialect: bench_dialect(dialect, args, folder, stack) for dialect in dialects}
        if len(sources) == 2:
            bench_push(sources, folder, stack)


if __name__ == "__main__":
    main()
