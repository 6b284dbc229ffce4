"""Each call computed once across concurrent runs: claims with leases and fencing (lf_claim).

Every execution of a task appends one line to a marks file (``O_APPEND``: whole lines from
any number of processes), so a test counts executions across processes. Runs in child
processes are ``ledgerflow run`` commands on the test's ledger (SQLite, then PostgreSQL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import ledgerflow
from ledgerflow import task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.testing.pipelines import LedgerRows

PIPELINE = """
import os, time
from ledgerflow import task

def mark(text):
    fd = os.open(os.environ["MARKS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{text} {os.getpid()} {time.time()}\\n".encode())
    os.close(fd)

barrier = os.environ.get("BARRIER")
if barrier:  # every run starts its work at the same moment
    open(os.path.join(barrier, f"ready-{os.getpid()}"), "w").close()
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(barrier, "go")) and time.time() < deadline:
        time.sleep(0.01)

FAILED = []

@task
def shared(i: int) -> int:
    mark(f"shared {i}")
    hold = os.environ.get("HOLD")
    while hold and os.path.exists(hold):
        time.sleep(0.02)
    time.sleep(float(os.environ.get("SHARED_SECONDS", "0.2")))
    if os.environ.get("SHARED_FAILS") and not FAILED:  # the first call of this process
        FAILED.append(i)
        mark(f"failing {i}")
        raise RuntimeError("shared failed")
    return i * 10

@task
def own(tag: str) -> str:
    mark(f"own {tag}")
    return tag

@task
def main(n: int, label: str) -> list:
    return [shared(i) for i in range(n)] + [own(label)]

@task
def pair(label: str, i: int = 0) -> list:
    return [shared(i), own(label)]
"""

#: Short leases and polls, so that the faults below resolve within a few seconds.
LEASE = 1.5
POLL = 0.2


class Marks:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[tuple[str, str, int, float]]:
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text().splitlines():
            kind, arg, pid, when = line.split()
            found.append((kind, arg, int(pid), float(when)))
        return found

    def of(self, kind: str, arg: str | None = None) -> list[tuple[str, str, int, float]]:
        return [m for m in self.lines() if m[0] == kind and (arg is None or m[1] == arg)]


class Project:
    """The test's project: its ledger with short leases, the pipeline, child runs."""

    def __init__(self, root: Path, settings: Settings, ledger: LedgerRows) -> None:
        self.root = root
        self.ledger = ledger
        assert settings.path is not None
        self.config = settings.path
        self.configure(lease=LEASE, poll=POLL)
        (root / "pipe_claims.py").write_text(textwrap.dedent(PIPELINE))
        self.marks = Marks(root / "marks.txt")
        self.env = {**os.environ, "MARKS": str(self.marks.path), "PYTHONDONTWRITEBYTECODE": "1"}
        self.children: list[subprocess.Popen[str]] = []

    def configure(self, **cache: Any) -> None:
        """Set keys of the ``cache:`` section of ledgerflow.yml."""
        config = yaml.safe_load(self.config.read_text())
        config.setdefault("cache", {}).update(cache)
        self.config.write_text(yaml.safe_dump(config))
        self.settings = load_settings(self.config)

    def run(self, *args: str, **env: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "ledgerflow", "--config", str(self.config), "run",
                   "-q", *args]  # fmt: skip
        child = subprocess.Popen(
            command, cwd=self.root, env={**self.env, **env}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.children.append(child)
        return child

    def claims(self) -> list[dict[str, Any]]:
        return self.ledger.rows("lf_claim")

    def execute(self, expr: Any, **options: Any) -> Any:
        """A run in this process (local executor)."""
        return ledgerflow.execute(expr, settings=self.settings, **options)

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.communicate()


@pytest.fixture
def project(
    tmp_path: Path, ledger_settings: Settings, ledger: LedgerRows, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    kit = Project(tmp_path, ledger_settings, ledger)
    monkeypatch.setenv("MARKS", str(kit.marks.path))
    monkeypatch.setenv("SHARED_SECONDS", "0.05")
    monkeypatch.delenv("BARRIER", raising=False)
    try:
        yield kit
    finally:
        kit.stop()
        sys.modules.pop("pipe_claims", None)


def _until(condition: Callable[[], Any], timeout: float = 20.0, child: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child is not None and child.poll() is not None:
            raise AssertionError(f"the run ended first: {child.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _pipeline(root: Path) -> Any:
    """The pipeline module, imported from the project (as ``ledgerflow run`` does)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipe_claims", root / "pipe_claims.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pipe_claims"] = module
    spec.loader.exec_module(module)
    return module


def test_concurrent_runs_compute_each_call_exactly_once(project: Project, tmp_path: Path) -> None:
    """Four runs (local, threads, processes executors) start their work at the same moment
    and want the same 8 calls: each is executed once, the others use its cache entry."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    runs = [
        project.run("pipe_claims.py:main", "--n", "8", "--label", f"t{i}", "--executor", kind,
                    "--workers", "2", BARRIER=str(barrier), SHARED_SECONDS="0.2")
        for i, kind in enumerate(["local", "threads", "processes", "local"])
    ]  # fmt: skip
    _until(lambda: len(list(barrier.glob("ready-*"))) >= len(runs), child=None)
    (barrier / "go").touch()
    for child in runs:
        _out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    executed = sorted(arg for _kind, arg, _pid, _when in project.marks.of("shared"))
    assert executed == [str(i) for i in range(8)]  # each call once, across the four runs
    assert sorted(arg for _k, arg, _p, _w in project.marks.of("own")) == ["t0", "t1", "t2", "t3"]
    assert project.claims() == []  # every claim released
    assert project.ledger.count("lf_cache_entry") == 8 + 4 + 4



THIEF = "0" * 32
_thieves: list[Callable[[], None]] = []


@task
def stolen(i: int) -> int:
    for steal in _thieves:
        steal()
    return i + 1


def test_a_stale_owner_does_not_commit_its_cache_entry(project: Project) -> None:
    """While the call computes, another run takes its claim over (fence + 1): the stale
    owner's result is recorded as its task run, but not as the cache entry, and the new
    owner's claim stays."""
    from sqlalchemy import text

    def steal() -> None:
        with project.ledger.database.engine().begin() as conn:
            taken = conn.execute(
                text("UPDATE lf_claim SET run_id = :thief, fence = fence + 1"), {"thief": THIEF}
            )
            assert taken.rowcount == 1

    _thieves.append(steal)
    try:
        result = project.execute(stolen(41))
    finally:
        _thieves.clear()
    assert result.status == "done" and result.value == 42
    (task_run,) = project.ledger.rows("lf_task_run", run_id=result.run_id)
    assert task_run["status"] == "done" and task_run["value_hash"] is not None
    assert project.ledger.rows("lf_cache_entry") == []
    (claim,) = project.claims()
    assert claim["run_id"] == THIEF and claim["fence"] == 2


@pytest.mark.parametrize(
    ("elsewhere", "lease"),
    [(True, LEASE), (False, 30.0)],
    ids=["owner-on-another-host-lease-expires", "owner-on-this-host-process-gone"],
)
def test_a_killed_owner_is_taken_over_while_the_waiting_run_does_its_other_work(
    project: Project, elsewhere: bool, lease: float
) -> None:
    """A owns shared(0) and is SIGKILLed. B wants shared(0) and own(b): it computes own(b)
    while A is alive, does not compute shared(0), and takes it over once A's lease expired
    (by the database's clock; A on another host) or, on this host, once A's process is gone
    (at the next poll, long before the lease ends)."""
    project.configure(lease=lease)
    owner = project.run("pipe_claims.py:shared", "--i", "0", SHARED_SECONDS="60")
    _until(lambda: project.marks.of("shared") and project.claims(), child=owner)
    if elsewhere:  # as if A ran on another machine: its process cannot be checked
        from sqlalchemy import text

        with project.ledger.database.engine().begin() as conn:
            conn.execute(text("UPDATE lf_claim SET host = 'another-host.example'"))
    waiter = project.run("pipe_claims.py:pair", "--label", "b")
    _until(lambda: project.marks.of("own", "b"), child=waiter)
    time.sleep(3 * POLL)
    assert [m[2] for m in project.marks.of("shared")] == [owner.pid]  # B waits for A

    os.kill(owner.pid, signal.SIGKILL)
    killed = time.time()
    owner.wait()
    _out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    first, second = project.marks.of("shared", "0")
    assert (first[2], second[2]) == (owner.pid, waiter.pid)
    took = second[3] - killed
    if elsewhere:
        assert LEASE / 3 <= took <= LEASE + POLL + 1.5  # the lease ran out, then one poll
    else:
        assert took <= POLL + 1.5
    assert {r["run_id"] for r in project.ledger.rows("lf_cache_entry")} == {
        r["id"] for r in project.ledger.rows("lf_run") if r["pid"] == waiter.pid
    }
    assert project.claims() == []


def test_the_owners_heartbeat_keeps_its_lease_while_a_long_call_computes(
    project: Project, tmp_path: Path
) -> None:
    """A computes shared(0) for twice the lease: its heartbeat extends the lease, so B
    waits for A's result instead of taking the call over."""
    hold = tmp_path / "hold"
    hold.touch()
    owner = project.run("pipe_claims.py:shared", "--i", "0", HOLD=str(hold), SHARED_SECONDS="0")
    _until(lambda: project.marks.of("shared") and project.claims(), child=owner)
    waiter = project.run("pipe_claims.py:pair", "--label", "b")
    _until(lambda: project.marks.of("own", "b"), child=waiter)
    time.sleep(2 * LEASE)
    hold.unlink()
    for child in (owner, waiter):
        _out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    assert [m[2] for m in project.marks.of("shared")] == [owner.pid]  # computed once, by A
    assert project.claims() == []


def test_a_failed_call_releases_its_claim_to_a_waiting_run(
    project: Project, tmp_path: Path
) -> None:
    """A's first call fails: its claim is released at once (A goes on with its other call),
    and the waiting run B computes that call itself."""
    hold = tmp_path / "hold"
    hold.touch()
    owner = project.run("pipe_claims.py:main", "--n", "2", "--label", "a",
                        HOLD=str(hold), SHARED_SECONDS="2", SHARED_FAILS="1")  # fmt: skip
    _until(lambda: project.marks.of("shared") and project.claims(), child=owner)
    held = project.marks.of("shared")[0][1]  # the call A computes first (and will fail)
    other = "1" if held == "0" else "0"
    waiter = project.run("pipe_claims.py:pair", "--label", "b", "--i", held)
    _until(lambda: project.marks.of("own", "b"), child=waiter)
    hold.unlink()  # A's call fails 2 s from now
    _out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    (failing,) = project.marks.of("failing", held)
    _first, second = project.marks.of("shared", held)
    assert second[2] == waiter.pid and second[3] > failing[3]
    (a_next,) = project.marks.of("shared", other)
    assert a_next[2] == owner.pid
    assert second[3] < a_next[3] + 2  # while A still computed its other call
    owner.communicate(timeout=60)
    assert owner.returncode != 0
    assert project.claims() == []


def test_no_wait_computes_a_claimed_call_and_an_interrupted_owner_releases_its_claims(
    project: Project,
) -> None:
    """``--no-wait`` (and ``cache.wait: false``) compute calls another run holds; a run
    stopped by SIGTERM releases every claim it held."""
    owner = project.run("pipe_claims.py:main", "--n", "2", "--label", "a", SHARED_SECONDS="60")
    _until(lambda: project.marks.of("shared") and project.claims(), child=owner)
    impatient = project.run("--no-wait", "pipe_claims.py:shared", "--i", "0")
    _out, err = impatient.communicate(timeout=60)
    assert impatient.returncode == 0, err
    project.configure(wait=False)
    pipe = _pipeline(project.root)
    result = project.execute(pipe.shared(1))
    assert result.status == "done" and result.value == 10
    assert owner.poll() is None  # A still computes shared(0)
    runs = [m[2] for m in project.marks.of("shared")]
    assert runs == [owner.pid, impatient.pid, os.getpid()]
    assert {c["run_id"] for c in project.claims()} == {
        r["id"] for r in project.ledger.rows("lf_run") if r["pid"] == owner.pid
    }

    owner.send_signal(signal.SIGTERM)
    owner.communicate(timeout=60)
    assert owner.returncode == 128 + signal.SIGTERM
    assert project.claims() == []


def test_lease_and_poll_are_checked(tmp_path: Path) -> None:
    from ledgerflow.errors import ConfigError

    for cache, message in [({"lease": 0}, "cache.lease"), ({"poll": "often"}, "cache.poll"),
                           ({"wait": "maybe"}, "cache.wait")]:  # fmt: skip
        path = tmp_path / "ledgerflow.yml"
        path.write_text(yaml.safe_dump({
            "databases": {"default": {"dialect": "sqlite", "path": "l.db"}}, "cache": cache,
        }))  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            load_settings(path)
