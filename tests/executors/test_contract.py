"""One contract for every executor: the same pipeline leaves the same ledger records."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

import ledgerflow
from ledgerflow import context, task
from ledgerflow.config.settings import EXECUTOR_KINDS, Settings
from ledgerflow.db import Database
from ledgerflow.engine.executor import Executor, executor_class, get_executor
from ledgerflow.errors import UsageError
from ledgerflow.testing.pipelines import LedgerRows

NOTES = Table("executor_note", MetaData(), Column("value", Integer, nullable=False))


@task
def generate(i: int) -> int:
    return i * 10


@task
def note(x: int) -> int:
    context.session.execute(insert(NOTES).values(value=x))
    context.logger.info("noted %s", x)
    return x + 1


@task
def main(n: int) -> list[int]:
    return [note(generate(i)) for i in range(n)]


@task
def crash(x: int) -> int:
    raise ValueError(f"crash {x}")


@task
def lock() -> object:
    return threading.Lock()


@task(retries=1)
def flaky(marker: str) -> str:
    """Fails on its first attempt (wherever that ran), succeeds on the second."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise RuntimeError("first attempt fails")
    return "second attempt"


@task(timeout=0.5)
def overrun(seconds: float) -> str:
    time.sleep(seconds)
    return "late"


@task(timeout=0.5, retries=1)
def overrun_once(marker: str) -> str:
    """Goes past its timeout on its first attempt only."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        time.sleep(1.5)
    return "in time"


@task(timeout=1)
def hang() -> int:
    time.sleep(600)
    return os.getpid()


@task
def steady(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@task
def follow(gate: int, i: int) -> int:
    time.sleep(0.2)
    return os.getpid()


@task
def whoami() -> int:
    print(f"printed by the task in {os.getpid()}")
    return os.getpid()


EXECUTORS = ["local", "threads", "processes", pytest.param("dask", marks=pytest.mark.dask)]


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    """Two single-thread Dask workers (processes), shared by this module's dask tests."""
    yield from _two_workers()


@pytest.fixture
def own_dask_cluster() -> Iterator[Any]:
    """Two workers of the test's own, for a test that kills one (the shared cluster's
    nannies have already replaced workers killed by earlier tests)."""
    yield from _two_workers()


def _two_workers() -> Iterator[Any]:
    from distributed import LocalCluster

    from ledgerflow.executors.dask import LOCAL_SCHEDULER_HTTP

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, scheduler_kwargs=dict(LOCAL_SCHEDULER_HTTP),
                           silence_logs=logging.ERROR)  # fmt: skip
    try:
        yield cluster
    finally:
        cluster.close()


def _executor(name: str, request: pytest.FixtureRequest) -> str | Executor:
    if name != "dask":
        return name
    from ledgerflow.executors.dask import DaskExecutor

    cluster = request.getfixturevalue("dask_cluster")
    return DaskExecutor(workers=2, address=cluster.scheduler_address)


def _worker_pids(name: str, request: pytest.FixtureRequest) -> set[int]:
    """The processes that may run the jobs of an executor."""
    if name in ("local", "threads"):
        return {os.getpid()}
    if name == "dask":
        cluster = request.getfixturevalue("dask_cluster")
        return {int(w.pid) for w in cluster.workers.values()}
    return set()  # the pool's processes are gone when the run ends; any pid but ours


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_executor_records_the_same_ledger(
    executor: str,
    ledger_settings: Settings,
    ledger: LedgerRows,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    admin = Database(ledger_settings, role="admin")
    try:
        NOTES.create(admin.engine())
    finally:
        admin.dispose()

    result = ledgerflow.execute(
        {"ok": main(3), "bad": crash(1), "lock": lock(),
         "flaky": flaky(str(tmp_path / "marker")), "who": whoami()},
        settings=ledger_settings, executor=_executor(executor, request), workers=2,
    )  # fmt: skip
    assert result.status == "failed"
    assert {k: v for k, v in result.counts.items() if v} == {"done": 9, "failed": 2}
    failures = {f.task_name: f for f in result.failures}
    assert failures[crash.fullname].message == "crash 1"
    assert failures[crash.fullname].exception_type == "ValueError"
    unstorable = failures[lock.fullname]
    assert lock.fullname in unstorable.message and "_thread.lock" in unstorable.message

    (run,) = ledger.rows("lf_run")
    assert run["executor"] == executor and run["status"] == "failed"
    rows = ledger.rows("lf_task_run")
    assert all(r["worker"] for r in rows if r["status"] == "done")
    attempts = sorted((r["attempt"], r["status"]) for r in rows if r["task_name"] == flaky.fullname)
    assert attempts == [(1, "failed"), (2, "done")]
    (who,) = [r for r in rows if r["task_name"] == whoami.fullname]
    host, pid = who["worker"].split(":")[:2]
    assert host == socket.gethostname()
    allowed = _worker_pids(executor, request)
    assert int(pid) in allowed if allowed else int(pid) != os.getpid()
    (root,) = [r for r in rows if r["task_name"] == main.fullname]
    children = [r for r in rows if r["parent_id"] == root["id"]]
    assert len(children) == 6 and root["status"] == "done"
    assert ledger.count("lf_call_edge", parent_hash=root["call_hash"]) == 6
    notes = {r["id"] for r in children if r["task_name"] == note.fullname}
    logs = ledger.rows("lf_log_record")
    noted = [r for r in logs if r["message"].startswith("noted")]
    assert sorted(r["message"] for r in noted) == ["noted 0", "noted 10", "noted 20"]
    assert {r["task_run_id"] for r in noted} == notes
    (printed,) = [r for r in logs if r["task_run_id"] == who["id"]]
    assert printed["message"] == f"printed by the task in {pid}"

    database = Database(ledger_settings)
    try:
        with database.engine().connect() as conn:
            assert sorted(r.value for r in conn.execute(select(NOTES))) == [0, 10, 20]
    finally:
        database.dispose()

    again = ledgerflow.execute(
        main(3), settings=ledger_settings, executor=_executor(executor, request), workers=2
    )
    assert again.value == [1, 11, 21] and again.counts["cached"] == 1


@pytest.mark.parametrize("executor", EXECUTORS)
def test_every_executor_fails_a_task_past_its_timeout(
    executor: str,
    ledger_settings: Settings,
    ledger: LedgerRows,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The same records everywhere: the task run is failed with TaskTimeoutError, and a
    task with ``retries`` gets its next attempt as after any other failure. (Processes and
    dask stop it at its timeout; local and threads, which cannot stop a thread, when it
    returns.)"""
    result = ledgerflow.execute(
        {"late": overrun(1.5), "once": overrun_once(str(tmp_path / "marker")), "ok": generate(1)},
        settings=ledger_settings, executor=_executor(executor, request), workers=2,
    )  # fmt: skip
    assert result.status == "failed"
    assert len(result.failures) == 1
    (failure,) = result.failures
    assert failure.task_name == overrun.fullname
    assert failure.exception_type == "ledgerflow.errors.TaskTimeoutError"
    assert f"task {overrun.fullname}" in failure.message and "timeout of 0.5 s" in failure.message
    rows = ledger.rows("lf_task_run")
    attempts = sorted((r["attempt"], r["status"]) for r in rows if r["task_name"] == overrun_once.fullname)
    assert attempts == [(1, "failed"), (2, "done")]
    (late,) = [r for r in rows if r["task_name"] == overrun.fullname]
    assert late["status"] == "failed" and late["value_hash"] is None and late["worker"]
    assert {r["status"] for r in rows if r["task_name"] == generate.fullname} == {"done"}


@pytest.mark.parametrize("executor", ["processes", pytest.param("dask", marks=pytest.mark.dask)])
def test_a_task_past_its_timeout_is_stopped_and_its_worker_replaced(
    executor: str,
    ledger_settings: Settings,
    ledger: LedgerRows,
    request: pytest.FixtureRequest,
) -> None:
    """``hang`` would sleep 600 s: it is stopped after 1 s, while ``steady`` goes on
    undisturbed on the other worker, and a new worker takes the jobs that were waiting."""
    cluster: Any = None
    chosen: str | Executor = executor
    if executor == "dask":
        from ledgerflow.executors.dask import DaskExecutor

        cluster = request.getfixturevalue("own_dask_cluster")
        chosen = DaskExecutor(workers=2, address=cluster.scheduler_address)
    started = time.monotonic()
    gate = steady(1.5)
    result = ledgerflow.execute(
        {"hang": hang(), "steady": steady(3.0), "after": [follow(gate, i) for i in range(4)]},
        settings=ledger_settings, executor=chosen, workers=2,
    )  # fmt: skip
    assert time.monotonic() - started < 60
    (failure,) = result.failures
    assert failure.exception_type == "ledgerflow.errors.TaskTimeoutError"
    assert "its worker was stopped and replaced" in failure.message
    rows = ledger.rows("lf_task_run")
    (hung,) = [r for r in rows if r["task_name"] == hang.fullname]
    assert hung["status"] == "failed" and 0.9 < hung["duration"] < 30
    done = [r for r in rows if r["task_name"] in (steady.fullname, follow.fullname)]
    assert len(done) == 6 and {r["status"] for r in done} == {"done"}

    def pid(row: dict[str, Any]) -> int:
        return int(row["worker"].split(":")[1].split()[0])

    killed_at = hung["ended_at"]
    assert all(r["started_at"] < hung["started_at"] for r in done if pid(r) == pid(hung))
    before = {pid(r) for r in done if r["started_at"] < killed_at} | {pid(hung)}
    if executor == "processes":  # a new worker took the jobs that waited
        assert {pid(r) for r in done if r["started_at"] >= killed_at} - before
    else:  # the nanny starts a new worker process (the jobs may all have gone to the other)
        deadline = time.monotonic() + 60


        def live() -> set[int]:
            return {int(w.pid) for w in cluster.scheduler.workers.values()}

        while (len(live()) < 2 or pid(hung) in live()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(live()) == 2 and pid(hung) not in live()


@pytest.mark.parametrize("bad", [0, -1, "60", True, float("inf"), float("nan")])
def test_timeout_must_be_a_positive_number_of_seconds(bad: Any) -> None:
    from ledgerflow.errors import TaskDefinitionError

    def f() -> int:
        return 1

    with pytest.raises(TaskDefinitionError, match="timeout must be a positive number of seconds"):
        task(timeout=bad)(f)
    assert task(timeout=2.5)(f).timeout == 2.5 and task(f).timeout is None


def test_executors_are_registered_lazily_and_unknown_names_are_refused() -> None:
    assert EXECUTOR_KINDS == ("local", "threads", "processes", "dask")
    for name in EXECUTOR_KINDS:
        cls = executor_class(name)
        assert issubclass(cls, Executor) and cls.name == name
    assert get_executor("processes").workers >= 1
    assert get_executor("local").workers == 1
    with pytest.raises(UsageError) as info:
        get_executor("slurm")
    assert "unknown executor 'slurm'" in str(info.value)
    assert "known executors: local, threads, processes, dask" in str(info.value)
    with pytest.raises(UsageError, match="workers must be >= 1"):
        get_executor("threads", workers=0)


def test_one_list_of_executor_names_for_config_cli_and_registry(tmp_path: Path) -> None:
    from ledgerflow.cli.run import run as run_command
    from ledgerflow.config import settings_from_mapping
    from ledgerflow.errors import ConfigError

    option = next(p for p in run_command.params if p.name == "executor")
    assert tuple(option.type.choices) == EXECUTOR_KINDS  # type: ignore[attr-defined]
    base = {"databases": {"default": {"dialect": "sqlite", "path": str(tmp_path / "l.db")}}}
    for name in EXECUTOR_KINDS:
        assert settings_from_mapping({**base, "executor": {"kind": name}}).executor.kind == name
    with pytest.raises(ConfigError, match="kind"):  # not advertised without an implementation
        settings_from_mapping({**base, "executor": {"kind": "ray"}})


def test_implementations_are_imported_only_when_used() -> None:
    code = (
        "import sys\n"
        "from ledgerflow.engine.executor import get_executor\n"
        "before = {m for m in sys.modules if m.startswith('ledgerflow.executors.')}\n"
        "get_executor('threads')\n"
        "after = {m for m in sys.modules if m.startswith('ledgerflow.executors.')}\n"
        "print(sorted(before), sorted(after))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "['ledgerflow.executors.threads']"]
