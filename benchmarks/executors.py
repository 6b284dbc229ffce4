"""Executors against each other and against their engines' own floors.

    .venv/bin/python benchmarks/executors.py [--part cpu,overhead,big] [--tiny 10000]
        [--cpu-tasks 16] [--big-mb 200]

* cpu: ``--cpu-tasks`` tasks of ~0.5 s of pure-Python work each, ``--workers 2``: the wall
  time of ``local``, ``processes`` and ``dask`` (a LocalCluster started by the run, its
  start included; and an already running 2-worker cluster), and each one's speed-up over
  ``local``.
* overhead: ``--tiny`` tasks that return at once, through ledgerflow on dask (an already
  running LocalCluster of 2 single-thread workers) against ``client.map`` +
  ``client.gather`` of the same function on the same cluster; and through ledgerflow's
  ``processes`` executor (2 workers) against ``ProcessPoolExecutor(2).map``.
* big: a task on a dask worker returns ``--big-mb`` MB of bytes; the peak RSS of the run's
  process (a fresh interpreter, measured by ``getrusage``) over the value's size: for the
  run (the worker stores the value and sends a reference), then after reading
  ``result.value`` from the value store.

Each ledgerflow run writes a fresh SQLite ledger in a temporary directory, with the cache
off. The machine's other load shows in every figure: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import ledgerflow
from ledgerflow import task
from ledgerflow.config import settings_from_mapping
from ledgerflow.config.settings import Settings

LOOPS_PER_SECOND = 0  # set by calibrate()


def spin(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def calibrate(seconds: float = 0.5) -> int:
    loops = 200_000
    while True:
        start = time.perf_counter()
        spin(loops)
        took = time.perf_counter() - start
        if took > 0.1:
            return int(loops * seconds / took)
        loops *= 2


@task
def burn(i: int, loops: int) -> int:
    return spin(loops) + i


@task
def cpu_main(n: int, loops: int) -> list[int]:
    return [burn(i, loops) for i in range(n)]


def tiny_function(i: int) -> int:
    return i + 1


@task
def tiny(i: int) -> int:
    return i + 1


@task
def tiny_main(n: int) -> list[int]:
    return [tiny(i) for i in range(n)]


@task
def big(megabytes: int) -> bytes:
    return os.urandom(1024 * 1024) * megabytes


def fresh_settings(directory: Path) -> Settings:
    return settings_from_mapping(
        {
            "databases": {"default": {"dialect": "sqlite", "path": str(directory / "l.db")}},
            "values": {"store": str(directory / "values")},
            "auto_migrate": True,
        }
    )


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def run_pipeline(expr: Any, executor: Any, workers: int | None = 2) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        settings = fresh_settings(Path(tmp))
        ledgerflow.execute(tiny(0), settings=settings, executor="local")  # migrate: not timed
        took, result = timed(
            lambda: ledgerflow.execute(
                expr, settings=settings, executor=executor, workers=workers, cache=False
            )
        )
        assert result.status == "done", result.failures
        return took


def local_cluster() -> Any:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
    return cluster, Client(cluster)


def part_cpu(tasks: int) -> None:
    from ledgerflow.executors.dask import DaskExecutor

    loops = calibrate()
    print(f"cpu: {tasks} tasks of ~0.5 s ({loops} loops), --workers 2")
    times = {"local": run_pipeline(cpu_main(tasks, loops), "local", workers=1)}
    times["processes"] = run_pipeline(cpu_main(tasks, loops), "processes")
    times["dask (LocalCluster started by the run)"] = run_pipeline(cpu_main(tasks, loops), "dask")
    cluster, client = local_cluster()
    try:
        executor = DaskExecutor(workers=2, address=cluster.scheduler_address)
        times["dask (running 2-worker cluster)"] = run_pipeline(cpu_main(tasks, loops), executor)
    finally:
        client.close()
        cluster.close()
    for name, took in times.items():
        print(f"  {name:42} {took:6.2f} s   speed-up over local {times['local'] / took:4.2f}x")


def part_overhead(n: int) -> None:
    from ledgerflow.executors.dask import DaskExecutor

    print(f"overhead: {n} tiny tasks, 2 single-thread workers")
    cluster, client = local_cluster()
    try:
        client.gather(client.map(tiny_function, range(50), pure=False))  # warm the workers
        floor, _ = timed(lambda: client.gather(client.map(tiny_function, range(n), pure=False)))
        executor = DaskExecutor(workers=2, address=cluster.scheduler_address)
        ours = run_pipeline(tiny_main(n), executor)
    finally:
        client.close()
        cluster.close()
    print(f"  dask: client.map+gather {floor:6.2f} s   ledgerflow {ours:6.2f} s   "
          f"ratio {ours / floor:5.2f}  ({ours / n * 1e3:.2f} ms/task)")  # fmt: skip
    own = run_pipeline(tiny_main(n), "dask")
    print(f"  dask, a LocalCluster started by the run (its start included): "
          f"{own:6.2f} s  ({own / n * 1e3:.2f} ms/task)")
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(tiny_function, range(50)))
        floor, _ = timed(lambda: list(pool.map(tiny_function, range(n))))
    ours = run_pipeline(tiny_main(n), "processes")
    print(f"  processes: ProcessPoolExecutor.map {floor:6.2f} s   ledgerflow {ours:6.2f} s   "
          f"ratio {ours / floor:5.2f}  ({ours / n * 1e3:.2f} ms/task)")  # fmt: skip


def big_child(megabytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = fresh_settings(Path(tmp))
        ledgerflow.execute(tiny(0), settings=settings, executor="local")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = ledgerflow.execute(
            big(megabytes), settings=settings, executor="dask", workers=1, cache=False
        )
        assert result.status == "done", result.failures
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert len(result.value) == megabytes * 1024 * 1024  # read from the value store now
        read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{before} {peak} {read}")


def part_big(megabytes: int) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--big-child", str(megabytes)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    before, peak, read = (int(x) * 1024 for x in out.stdout.split()[-3:])
    size = megabytes * 1024 * 1024
    print(f"big: a {megabytes} MB result from a dask worker")
    print(f"  peak RSS of the run's process {peak / 2**20:7.0f} MiB "
          f"(before the run {before / 2**20:.0f} MiB): {peak / size:.2f}x the value, "
          f"{(peak - before) / size:.2f}x above the process before the run")  # fmt: skip
    print(f"  then reading result.value from the value store: peak {read / 2**20:7.0f} MiB, "
          f"{read / size:.2f}x the value")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="cpu,overhead,big")
    parser.add_argument("--cpu-tasks", type=int, default=16)
    parser.add_argument("--tiny", type=int, default=10_000)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--big-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.big_child is not None:
        big_child(args.big_child)
        return
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    parts = args.part.split(",")
    if "cpu" in parts:
        part_cpu(args.cpu_tasks)
    if "overhead" in parts:
        part_overhead(args.tiny)
    if "big" in parts:
        part_big(args.big_mb)


if __name__ == "__main__":
    main()
