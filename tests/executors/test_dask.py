"""The dask executor's own cases: dead workers, Ctrl-C, its configuration and its extra.

What every executor must do is in test_contract.py (parametrised over dask too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ledgerflow
from ledgerflow import task
from ledgerflow.config import settings_from_mapping
from ledgerflow.config.settings import Settings
from ledgerflow.engine.executor import get_executor
from ledgerflow.errors import ConfigError, MissingExtraError
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.testing.slurm import LocalSlurm


@task
def die() -> int:
    time.sleep(0.3)  # the other jobs are handed out meanwhile, some to this worker
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


@task(retries=1)
def die_once(marker: str) -> int:
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@task
def fine(i: int) -> int:
    return i + 1


@pytest.mark.dask
def test_a_killed_worker_fails_its_task_run_with_worker_lost(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    result = ledgerflow.execute(
        {"dies": die(), "fine": [fine(i) for i in range(12)]},
        settings=ledger_settings, executor="dask", workers=2,
    )  # fmt: skip
    assert result.status == "failed"
    (failure,) = result.failures
    assert failure.task_name == die.fullname and "worker lost" in failure.message
    (run,) = ledger.rows("lf_run")
    assert run["status"] == "failed" and run["executor"] == "dask"
    rows = ledger.rows("lf_task_run")
    assert not [r for r in rows if r["status"] == "running"]
    assert sorted(r["status"] for r in rows if r["task_name"] == fine.fullname) == ["done"] * 12


@pytest.mark.dask
def test_a_task_with_retries_runs_again_on_a_new_worker_after_its_worker_died(
    ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    result = ledgerflow.execute(
        die_once(str(marker)), settings=ledger_settings, executor="dask", workers=1
    )
    assert result.status == "done"
    rows = ledger.rows("lf_task_run")
    assert sorted((r["attempt"], r["status"]) for r in rows) == [(1, "failed"), (2, "done")]
    first, second = sorted(rows, key=lambda r: r["attempt"])
    assert "worker lost" in first["exception_message"]
    died = int(marker.read_text())
    assert int(second["worker"].split(":")[1]) == result.value != died  # a new worker ran it


CHILD = """
import os, sys, time
from pathlib import Path
from ledgerflow import task, run
from ledgerflow.errors import RunInterruptedError

@task
def quick(i: int) -> int:
    return i

@task
def slow(x: int) -> int:
    Path(sys.argv[2]).write_text(str(os.getpid()))
    time.sleep(600)
    return x

@task
def main() -> list[int]:
    return [quick(1), slow(quick(2))]

if __name__ == "__main__":  # the workers of a LocalCluster import this script
    try:
        run(main(), config=sys.argv[1], executor="dask", workers=1)
    except RunInterruptedError:
        sys.exit(130)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.dask
def test_ctrl_c_interrupts_the_run_and_closes_the_cluster(
    ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path
) -> None:
    script = tmp_path / "interrupted_pipeline.py"
    script.write_text(textwrap.dedent(CHILD))
    pid_file = tmp_path / "worker.pid"
    child = subprocess.Popen(
        [sys.executable, str(script), str(ledger_settings.path), str(pid_file)], cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 90
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        assert worker != child.pid and _alive(worker)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 130
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the Dask worker outlived its run"
    (run,) = ledger.rows("lf_run")
    assert run["status"] == "interrupted" and run["executor"] == "dask"
    statuses = {(r["task_name"].rsplit(".", 1)[1], r["status"]) for r in ledger.rows("lf_task_run")}
    assert ("slow", "interrupted") in statuses and ("quick", "done") in statuses
    assert not [s for s in statuses if s[1] == "running"]


@task
def sleepy(marker: str, after: int) -> int:
    Path(marker).write_text("started")
    time.sleep(120)
    return 0


@pytest.mark.dask
def test_the_local_cluster_leaves_port_8787_to_others() -> None:
    """Two runs at once (or a run beside someone's dashboard) must not compete for the
    scheduler's default HTTP port: the executor's LocalCluster takes any free one."""
    import socket
    import warnings

    from ledgerflow.executors.dask import DaskExecutor

    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))  # the default port, taken (else: already taken by someone)
        holder.listen()
    except OSError:
        pass
    executor = DaskExecutor(workers=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster = executor._local_cluster()
    try:
        port = cluster.scheduler.http_server.port
        assert port != 8787
    finally:
        cluster.close()
        holder.close()
    assert not [w for w in caught if "already in use" in str(w.message)]


@pytest.mark.dask
def test_a_lost_scheduler_ends_the_run_interrupted(
    ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging
    import threading

    from distributed import LocalCluster

    from ledgerflow.executors import dask as dask_executor
    from ledgerflow.executors.dask import LOCAL_SCHEDULER_HTTP

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 2.0)  # how long the client retries
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                           scheduler_kwargs=dict(LOCAL_SCHEDULER_HTTP), silence_logs=logging.CRITICAL)  # fmt: skip
    marker = tmp_path / "started"

    def lose_the_scheduler() -> None:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.close()

    closer = threading.Thread(target=lose_the_scheduler, daemon=True)
    closer.start()
    try:
        executor = dask_executor.DaskExecutor(address=cluster.scheduler_address)
        started = time.monotonic()
        result = ledgerflow.execute(
            sleepy(str(marker), fine(1)), settings=ledger_settings, executor=executor
        )
        assert time.monotonic() - started < 60
    finally:
        closer.join(timeout=60)
        cluster.close()
    assert result.status == "interrupted"
    (run,) = ledger.rows("lf_run")
    assert run["status"] == "interrupted"
    statuses = {(r["task_name"].rsplit(".", 1)[1], r["status"]) for r in ledger.rows("lf_task_run")}
    assert statuses == {("fine", "done"), ("sleepy", "interrupted")}


# -- configuration -------------------------------------------------------------------------

BASE = {"databases": {"default": {"dialect": "sqlite", "path": "l.db"}}}


def test_dask_settings_are_read_and_checked() -> None:
    executor = settings_from_mapping(
        {**BASE, "executor": {"kind": "dask", "workers": 3, "threads_per_worker": 2,
                              "address": "tcp://10.0.0.5:8786"}}
    ).executor  # fmt: skip
    assert (executor.workers, executor.threads_per_worker) == (3, 2)
    assert executor.address == "tcp://10.0.0.5:8786" and executor.cluster is None

    cluster = settings_from_mapping(
        {**BASE, "executor": {"kind": "dask", "cluster": {
            "kind": "slurm", "cores": 8, "memory": "16GB", "walltime": "01:00:00",
            "queue": "short", "account": "astro", "job_extra_directives": ["--exclusive"],
            "adapt": {"minimum_jobs": 1, "maximum_jobs": 10}}}}
    ).executor.cluster  # fmt: skip
    assert cluster is not None and cluster.kind == "slurm" and cluster.cores == 8
    assert (cluster.minimum_jobs, cluster.maximum_jobs, cluster.jobs) == (1, 10, None)
    assert cluster.job_extra_directives == ("--exclusive",)
    scaled = settings_from_mapping(
        {**BASE, "executor": {"kind": "dask", "cluster": {
            "kind": "pbs", "cores": 4, "memory": "8GB", "scale": {"jobs": 3}}}}
    ).executor.cluster  # fmt: skip
    assert scaled is not None and scaled.jobs == 3 and scaled.maximum_jobs is None

    bad = [
        ({"kind": "threads", "address": "tcp://h:8786"}, "setting of the dask executor"),
        ({"kind": "dask", "address": "h:8786"}, "scheduler address"),
        ({"kind": "dask", "address": "tcp://h:1", "cluster": {"kind": "slurm", "cores": 1,
                                                              "memory": "1GB"}}, "not both"),
        ({"kind": "dask", "cluster": {"kind": "condor", "cores": 1, "memory": "1GB"}}, "kind"),
        ({"kind": "dask", "cluster": {"kind": "slurm", "memory": "1GB"}}, "cores"),
        ({"kind": "dask", "cluster": {"kind": "slurm", "cores": 1, "memory": "1GB",
                                      "adapt": {"minimum_jobs": 3, "maximum_jobs": 2}}},
         "minimum_jobs"),
        ({"kind": "dask", "cluster": {"kind": "slurm", "cores": 1, "memory": "1GB",
                                      "scale": {"jobs": 1}, "adapt": {"maximum_jobs": 2}}},
         "not both"),
    ]  # fmt: skip
    for section, message in bad:
        with pytest.raises(ConfigError, match=message):
            settings_from_mapping({**BASE, "executor": section})


@pytest.mark.dask
def test_a_slurm_cluster_is_built_by_dask_jobqueue_from_the_settings() -> None:
    """The batch script dask-jobqueue would submit (no Slurm needed: nothing is submitted)."""
    from ledgerflow.executors.dask import jobqueue_cluster

    config = settings_from_mapping(
        {**BASE, "executor": {"kind": "dask", "cluster": {
            "kind": "slurm", "cores": 2, "memory": "4GB", "walltime": "00:30:00",
            "queue": "short", "account": "astro", "job_extra_directives": ["--exclusive"],
            "processes": 1, "scale": {"jobs": 0}, "options": {"scheduler_options": {"dashboard_address": None}}}}}
    ).executor.cluster  # fmt: skip
    assert config is not None
    cluster = jobqueue_cluster(config)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p short", "#SBATCH -A astro", "#SBATCH -t 00:30:00",
                 "#SBATCH --exclusive", "#SBATCH --cpus-per-task=2"):  # fmt: skip
        assert line in script, script
    assert "--memory-limit 3.73GiB" in script and "--nthreads 2" in script


def test_without_the_extra_one_line_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingExtraError) as info:
        get_executor("dask")
    assert info.value.exit_code == 3
    text = str(info.value)
    assert "the dask executor needs the Python package 'distributed'" in text
    assert "pip install 'ledgerflow[dask]'" in text and "\n" not in text


@task
def where() -> str:
    return os.environ.get("SLURM_JOB_ID", "")


@pytest.mark.slurm
@pytest.mark.dask
@pytest.mark.parametrize("database_dialect", ["sqlite"])  # one database is enough for the batch path
def test_workers_run_as_slurm_jobs_and_task_runs_name_their_job(
    local_slurm: LocalSlurm, ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path
) -> None:
    """Two Dask workers, each a job of a real (single-node) Slurm, run the pipeline."""
    from ledgerflow.executors.dask import DaskExecutor

    logs = tmp_path / "jobs"
    cluster = settings_from_mapping(
        {**BASE, "executor": {"kind": "dask", "cluster": {
            "kind": "slurm", "cores": 1, "memory": "1GB", "processes": 1,
            "walltime": "00:10:00", "queue": local_slurm.partition, "scale": {"jobs": 2},
            "options": {"log_directory": str(logs)}}}}
    ).executor.cluster  # fmt: skip
    executor = DaskExecutor(workers=2, cluster=cluster)
    result = ledgerflow.execute(
        [where(), *(fine(i) for i in range(6))], settings=ledger_settings, executor=executor
    )
    assert result.status == "done", result.failures
    job = result.value[0]
    assert job.isdigit()
    # Slurm ran that job: its output file is the one sbatch was told to write.
    assert (logs / f"dask-worker-{job}.out").exists(), sorted(p.name for p in logs.iterdir())
    rows = ledger.rows("lf_task_run")
    (row,) = [r for r in rows if r["task_name"] == where.fullname]
    assert row["worker"].endswith(f" slurm-job:{job}")
    jobs = {r["worker"].rsplit(" slurm-job:", 1)[1] for r in rows}
    assert all(j.isdigit() and (logs / f"dask-worker-{j}.out").exists() for j in jobs)
    assert len(rows) == 7 and all(" slurm-job:" in r["worker"] for r in rows)
    deadline = time.monotonic() + 30  # the run cancels its jobs when it ends
    while local_slurm.jobs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert local_slurm.jobs() == []
