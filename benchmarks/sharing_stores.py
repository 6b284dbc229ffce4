"""Peak memory writing and reading one large value on each value store.

    .venv/bin/python benchmarks/sharing_stores.py                   # 300 MB, every store
    .venv/bin/python benchmarks/sharing_stores.py --mb 30 --store directory ledger

A task returns a value of ``--mb`` megabytes (``--kind``: a numpy float64 array, ``bytes``
or both). The *write* run executes the task and stores its value; the *read* run, in a new
process, finds the call cached and loads the value back from the store. Each run is a
child process of its own: after its imports and a warm-up run of a 2 MB value it resets its
peak resident set size (Linux ``/proc/self/clear_refs``) and notes its resident size, then
runs; what is printed is the
peak over that baseline (``VmHWM`` - baseline), against the value size. The value itself
is one times its size (the task makes it, the read run returns it): the target is at most
two times (today's encoding held up to six).

Stores: ``directory`` (SQLite ledger, ``.ledgerflow/values``), ``file`` (SQLite ledger,
``values.store: file:///...``), ``ledger`` (PostgreSQL ledger, chunks in ``lf_value_chunk``)
and ``s3`` (SQLite ledger, ``s3://`` on a local S3-protocol server: moto in server mode).
PostgreSQL comes from ``ledgerflow.testing.postgres.find_server()``; stores whose server or
package is missing are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledgerflow import task

STORES = ("directory", "file", "ledger", "s3")
KINDS = ("numpy", "bytes")
TARGET_RATIO = 2.0
#: Size of the value of the warm-up run each measuring process makes first (over 1 MiB, the
#: default inline limit, so it goes through the store too).
WARM_MB = 2
MB = 1_000_000


# -- the workload (inside the measuring process) ------------------------------------------


@task
def make_value(mb: int, kind: str) -> Any:
    import numpy as np

    if kind == "bytes":
        return os.urandom(mb * MB)  # one allocation (numpy's rng.bytes makes several)
    return np.random.default_rng(mb).random(mb * MB // 8)


def _status(field: str) -> int:
    """A ``/proc/self/status`` figure, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(config: str, mb: int, kind: str, phase: str) -> dict[str, Any]:
    """One run in this process: its peak resident size over the baseline, in bytes."""
    import gc

    import numpy  # noqa: F401  (imported before the baseline: start-up, not the value)

    import ledgerflow
    from ledgerflow.config import load_settings
    from ledgerflow.engine import execute

    settings = load_settings(config)
    # a run of a small large value first: what a run loads once (engines, drivers, the
    # store's client) is start-up, not the cost of the value
    warm = execute(make_value(WARM_MB, kind), settings=settings, executor="local")
    if warm.status != "done":
        raise SystemExit(f"warm-up run ended {warm.status}: {warm.failures[:1]}")
    del warm
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    baseline = _status("VmRSS")
    result = execute(make_value(mb, kind), settings=settings, executor="local")
    peak = _status("VmHWM")
    if result.status != "done":
        raise SystemExit(f"run ended {result.status}: {result.failures[:1]}")
    cached = result.counts.get("cached", 0)
    if (phase == "read") != (cached == 1):
        raise SystemExit(
            f"{phase} run: expected {'a' if phase == 'read' else 'no'} cache hit, "
            f"counts were {result.counts}"
        )
    size = len(result.value) if kind == "bytes" else result.value.nbytes
    del ledgerflow
    return {"extra": peak - baseline, "size": size, "baseline": baseline}


# -- orchestration (the parent process) ---------------------------------------------------


def _child(config: Path, mb: int, kind: str, phase: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "_measure", str(config), str(mb), kind, phase]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{phase} run failed ({proc.returncode}):\n{tail}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


@contextmanager
def s3_server() -> Iterator[dict[str, Any]]:
    """A local S3-protocol server (moto) with one bucket; yields the store options."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    os.environ.update(env)
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lf-bench")
        yield {"endpoint_url": endpoint}
    finally:
        server.stop()


@contextmanager
def project(store: str, workdir: Path, s3: dict[str, Any] | None) -> Iterator[Path]:
    """A ledgerflow.yml whose large values go to ``store``; its database is dropped after."""
    import yaml

    directory = Path(tempfile.mkdtemp(prefix=f"{store}-", dir=workdir))
    database = None
    values: dict[str, Any] = {}
    if store == "ledger":
        from ledgerflow.testing.postgres import find_server

        server = find_server()
        assert server is not None
        database = server.create_database(prefix="lf_bench")
        entry: dict[str, Any] = database.config_entry()
    else:
        entry = {"dialect": "sqlite", "path": "bench.db"}
    if store == "file":
        values["store"] = (directory / "shared").as_uri()
    elif store == "s3":
        assert s3 is not None
        values = {"store": "s3://lf-bench/values", "store_options": s3}
    config = directory / "ledgerflow.yml"
    data: dict[str, Any] = {"databases": {"default": entry}}
    if values:
        data["values"] = values
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    try:
        upgrade = subprocess.run(
            [sys.executable, "-m", "ledgerflow", "--config", str(config), "db", "upgrade"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if upgrade.returncode != 0:
            raise RuntimeError(f"ledgerflow db upgrade failed: {upgrade.stderr.strip()}")
        yield config
    finally:
        if database is not None:
            database.drop()
        shutil.rmtree(directory, ignore_errors=True)


def _available(stores: list[str]) -> list[str]:
    kept = []
    for store in stores:
        if store == "ledger":
            from ledgerflow.testing.postgres import find_server

            reasons: list[str] = []
            if find_server(reasons) is None:
                print(f"note: {store} skipped, no PostgreSQL server ({'; '.join(reasons)})")
                continue
        if store == "s3":
            try:
                import moto.server  # noqa: F401
                import s3fs  # noqa: F401
            except ImportError as exc:
                print(f"note: {store} skipped ({exc}; pip install 'ledgerflow[s3]' moto[server])")
                continue
        kept.append(store)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=300, help="value size in MB (default 300)")
    parser.add_argument("--store", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--kind", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    stores = _available(list(args.store))
    rows: list[tuple[str, str, str, int, int]] = []
    workdir = Path(tempfile.mkdtemp(prefix="lf-bench-stores-"))
    try:
        with s3_server() if "s3" in stores else _nothing() as s3:
            for store in stores:
                for kind in args.kind:
                    print(f"{store} {kind} {args.mb} MB ...", flush=True)
                    with project(store, workdir, s3) as config:
                        for phase in ("write", "read"):
                            got = _child(config, args.mb, kind, phase)
                            rows.append((store, kind, phase, got["size"], got["extra"]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{'store':<10} {'value':<6} {'phase':<6} {'size MB':>8} {'peak MB':>8} "
          f"{'x size':>7}  target <= {TARGET_RATIO:.0f}x")  # fmt: skip
    missed = 0
    for store, kind, phase, size, extra in rows:
        ratio = extra / size
        ok = ratio <= TARGET_RATIO
        missed += not ok
        print(f"{store:<10} {kind:<6} {phase:<6} {size / MB:>8.0f} {extra / MB:>8.0f} "
              f"{ratio:>6.2f}x  {'ok' if ok else 'MISSED'}")  # fmt: skip
    print(
        "\npeak = the run's highest resident size over its resident size before the run; "
        "figures from a shared machine are noisy."
    )
    return 1 if args.strict and missed else 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "_measure":
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])))
        sys.exit(0)
    sys.exit(main())
