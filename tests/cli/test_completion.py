"""Shell completion as docs/tasks.md describes it: the script loads in bash and completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword),
           "_LEDGERFLOW_COMPLETE": "bash_complete"}  # fmt: skip
    proc = subprocess.run(
        [str(BIN / "ledgerflow")], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_documented_shell_gets_a_script(shell: str) -> None:
    env = {**os.environ, "_LEDGERFLOW_COMPLETE": f"{shell}_source"}
    proc = subprocess.run(
        [str(BIN / "ledgerflow")], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "_LEDGERFLOW_COMPLETE" in proc.stdout


def test_commands_subcommands_and_choices_complete() -> None:
    assert complete("ledgerflow ca", 1) == ["cache"]
    assert complete("ledgerflow cache ", 2) == ["clear", "list", "verify"]
    assert complete("ledgerflow run --executor ", 3) == ["local", "threads", "processes", "dask"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_script_completes_in_bash() -> None:
    script = (
        'eval "$(_LEDGERFLOW_COMPLETE=bash_source ledgerflow)"; '
        "COMP_WORDS=(ledgerflow pr); COMP_CWORD=1; _ledgerflow_completion ledgerflow; "
        'echo "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["prune"]
