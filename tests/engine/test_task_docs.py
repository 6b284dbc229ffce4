"""Every Python example of docs/tasks.md runs as its text says, in a fresh project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledgerflow import migrations
from ledgerflow.testing.databases import sqlite_database
from ledgerflow.testing.projects import make_project

#: What each example prints, in order.
OUTPUTS = [
    ["shop.clean: 'hello' after 3 attempts of fetch"],
    [],  # filled in by the test: it depends on the run's id
    ["5 ['a.txt', 'b.txt']", "5 ['a.txt', 'b.txt']", "6 ['a.txt', 'b.txt', 'b.txt']"],
    [
        "cleaning 10 rows",
        "STDOUT None cleaning 10 rows",
        "WARNING __main__ 3 rows have no date",
        "INFO ledgerflow.task.__main__.clean done",
    ],
]
DOC = Path(__file__).parents[2] / "docs" / "tasks.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_page_has_its_examples() -> None:
    assert len(EXAMPLES) >= 4
    text = DOC.read_text(encoding="utf-8")
    for topic in ("version", "cache", "retries", "timeout", "TaskTimeoutError", "name", "namespace", "context.session",
                  "context.db", "context.logger", "context.args", "context.config",
                  "context.run_id", "File(path)", "file_hash", "cache.trust",
                  "_LEDGERFLOW_COMPLETE=bash_source", "zsh_source", "fish_source"):  # fmt: skip
        assert topic in text, topic


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_example_runs(number: int, tmp_path: Path) -> None:
    """On SQLite only: the examples are about tasks, not the database."""
    settings = make_project(tmp_path, sqlite_database(tmp_path))
    migrations.upgrade(settings)
    script = tmp_path / "example.py"
    script.write_text(EXAMPLES[number], encoding="utf-8")
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = OUTPUTS[number]
    if number == 1:
        expected = [
            "False",
            "{'label': 'weekly', 'entry arguments': {'label': 'weekly'}, "
            f"'project': '{tmp_path.name}', 'runs in the ledger': 1}}",
        ]
    assert proc.stdout.splitlines() == expected
