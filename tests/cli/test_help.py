"""Every command is listed with a one-line help, from the script and from ``python -m``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import click
import pytest

from ledgerflow.cli.main import COMMANDS, cli

MY_COMMANDS = ("init", "config", "db")
DB_COMMANDS = ("upgrade", "downgrade", "make-migrations", "history", "current", "check", "stamp")


def test_help_lists_every_command(ledgerflow: Callable[..., Any]) -> None:
    result = ledgerflow("--help")
    assert result.exit_code == 0
    for name in MY_COMMANDS:
        assert any(
            line.split()[:1] == [name] and COMMANDS[name][2] in line
            for line in result.stdout.splitlines()
        ), name


def test_python_dash_m_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    for name in (*MY_COMMANDS, *COMMANDS):
        assert f"  {name} " in result.stdout


@pytest.mark.parametrize("name", DB_COMMANDS)
def test_db_commands_have_one_line_help(ledgerflow: Callable[..., Any], name: str) -> None:
    group = cli.get_command(click.Context(cli), "db")
    assert isinstance(group, click.Group)
    command = group.get_command(click.Context(group), name)
    assert command is not None
    short = command.get_short_help_str(limit=200)
    assert short and "\n" not in short and len(short) <= 80
    listing = ledgerflow("db", "--help").stdout
    assert any(line.split()[:1] == [name] for line in listing.splitlines())
    assert ledgerflow("db", name, "--help").exit_code == 0
