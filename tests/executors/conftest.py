"""Fixtures of the executor tests.

Tests marked ``dask`` need the test extra's dask.distributed and dask-jobqueue: skipped without
it on a developer's machine (with the command to install it), failed when ``CI=true``.
``children`` starts pipelines in child processes (for the signal tests) and stops them.
``local_slurm`` (session) starts a single-node Slurm for the tests marked ``slurm`` (see
:mod:`ledgerflow.testing.slurm`; needs root and Debian's ``slurm-wlm`` and ``munge``, which
``.ci/run`` installs): skipped without them on a developer's machine, failed when ``CI=true``,
as is any test marked ``slurm`` that ends skipped there.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from ledgerflow.config.settings import Settings
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.testing.plugin import ci_enabled
from ledgerflow.testing.slurm import LocalSlurm, SlurmUnavailable, start_local_slurm


@pytest.fixture(autouse=True)
def _dask_installed(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("dask") is None:
        return
    missing = [m for m in ("distributed", "dask_jobqueue") if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed: pip install -e '.[test]'"
        if ci_enabled():
            pytest.fail(f"{reason} (dask tests must run when CI=true)", pytrace=False)
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and ci_enabled() and item.get_closest_marker("slurm") is not None:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"a Slurm test was skipped while CI=true (skip reason: {reason})"
    return report


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[LocalSlurm]:
    """A single-node Slurm for the session, its commands found through ``SLURM_CONF``."""
    try:
        slurm = start_local_slurm()
    except SlurmUnavailable as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:
        if ci_enabled():
            pytest.fail(f"Slurm is required when CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in slurm.environment().items():
            patch.setenv(name, value)
        try:
            yield slurm
        finally:
            slurm.stop()


#: A pipeline whose ``slow`` call sleeps until the run is stopped.
SLOW_PIPELINE = """
import time
from ledgerflow import task

@task
def quick(i: int) -> int:
    return i

@task
def slow(x: int) -> int:
    time.sleep(600)
    return x

@task
def main() -> list[int]:
    return [quick(1), slow(quick(2))]
"""


class Children:
    """Starts pipelines in child processes of a test (in ``tmp_path``) and stops them."""

    def __init__(self, root: Path, settings: Settings, ledger: LedgerRows) -> None:
        self.root = root
        self.settings = settings
        self.ledger = ledger
        self.started: list[subprocess.Popen[str]] = []
        self.env = {**os.environ, "LEDGERFLOW_HEARTBEAT_INTERVAL": "0.2"}

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def python(self, script: Path, *args: str) -> subprocess.Popen[str]:
        return self._start([sys.executable, str(script), *args])

    def cli(self, *args: str) -> subprocess.Popen[str]:
        config = str(self.settings.path)
        return self._start([sys.executable, "-m", "ledgerflow", "--config", config, *args])

    def _start(self, command: list[str]) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            command, env=self.env, cwd=self.root, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.started.append(child)
        return child

    def wait_until(
        self, condition: Callable[[], bool], child: subprocess.Popen[str], timeout: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert child.poll() is None, f"the run ended first: {child.communicate()}"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def slow_task_running(self) -> bool:
        return any(
            r["status"] == "running" and r["task_name"].endswith("slow")
            for r in self.ledger.rows("lf_task_run")
        )

    def stop_all(self) -> None:
        for child in self.started:
            if child.poll() is None:
                child.kill()
                child.communicate()


@pytest.fixture
def children(tmp_path: Path, ledger_settings: Settings, ledger: LedgerRows) -> Iterator[Children]:
    kit = Children(tmp_path, ledger_settings, ledger)
    kit.write("pipeline_file.py", SLOW_PIPELINE)
    try:
        yield kit
    finally:
        kit.stop_all()
