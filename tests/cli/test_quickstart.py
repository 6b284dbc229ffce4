"""The README's quick start example runs end to end on SQLite, and again on the same project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "quickstart.sh"


def _run(cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("LEDGERFLOW_CONFIG", None)
    result = subprocess.run(
        ["bash", str(SCRIPT), "demo"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Error" not in result.stderr
    return result.stdout


@pytest.mark.slow
def test_quickstart_runs_twice(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert "$ ledgerflow init demo" in first
    assert re.search(r"-> \[default\] pipeline [0-9a-f]{12}  add measurement", first)  # init's
    assert "in sync with the models" in first
    assert "get_or_create: S0001/temperature = 21.5 C (created)" in first
    assert "bulk_insert: 10000 rows" in first
    assert "paginate: page 1 of 334 (1000 rows)" in first
    assert (tmp_path / "demo" / "ledgerflow.db").is_file()

    again = _run(tmp_path)
    assert "Reusing the project in demo" in again and "Nothing to upgrade" in again
    assert "(already there)" in again and "bulk_insert" not in again
    assert "is now 22.5 C" in again
    assert len(list((tmp_path / "demo" / "pipeline" / "migrations").glob("*.py"))) == 1
