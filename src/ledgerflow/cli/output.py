"""Output helpers shared by every command: tables, stable JSON, coloured statuses.

Commands print through these so that ``--json`` output is stable (sorted keys, ISO dates)
and human output looks the same everywhere. Colours are dropped when stdout is not a
terminal. Lines go through click; rich is imported only to draw a table or a tree.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from ledgerflow.config import Settings

#: Style of each status word (runs, task runs, migration states).
STATUS_STYLES: dict[str, str] = {
    "done": "green",
    "cached": "cyan",
    "running": "yellow",
    "pending": "bright_black",
    "failed": "bold red",
    "skipped": "magenta",
    "interrupted": "red",
    "ok": "green",
    "in sync": "green",
    "head": "green",
    "current": "cyan",
}


#: Width of tables written to a file or a pipe, where nothing tells us the width.
PIPE_WIDTH = 200


def console() -> Console:
    """A console on the current stdout (so click's test runner captures it)."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width)


def echo(message: str = "", *, style: str | None = None) -> None:
    """Print one line, styled when stdout is a terminal; never interprets ``[markup]``.

    ``style`` is one of the colour words of :data:`STATUS_STYLES` (``"bold red"``, ...).
    """
    if style and "NO_COLOR" not in os.environ:
        words = style.split()
        colour = next((w for w in words if w != "bold"), None)
        message = click.style(message, fg=colour, bold="bold" in words)
    click.echo(message)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return {key: _plain(value) for key, value in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(key): _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = [_plain(item) for item in obj]
        return sorted(items, key=repr) if isinstance(obj, set | frozenset) else items
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, bytes):
        return obj.hex()
    return obj


def to_json(obj: Any) -> str:
    """Stable JSON: sorted keys, dataclasses as objects, dates as ISO 8601 strings."""
    return json.dumps(_plain(obj), sort_keys=True, indent=2, default=str, ensure_ascii=False)


def print_json(obj: Any) -> None:
    click.echo(to_json(obj))


def status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=STATUS_STYLES.get(status, ""))


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    status_column: str | None = "status",
) -> None:
    """A table; cells of the column named ``status_column`` are coloured by status."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    status_index = columns.index(status_column) if status_column in columns else -1
    for row in rows:
        cells = [
            status_text(str(cell)) if i == status_index else Text("" if cell is None else str(cell))
            for i, cell in enumerate(row)
        ]
        table.add_row(*cells)
    console().print(table)


def confirm(
    action: str,
    *,
    yes: bool,
    details: Callable[[], str] | None = None,
    preview: str = "--dry-run",
) -> None:
    """Ask before a destructive ``action`` ("prune the ledger"): a prompt on a terminal
    (``details()``, say what would be removed, is computed only then), ``--yes`` otherwise.
    Every destructive command also offers a way to see first (``preview``, ``--dry-run``)."""
    if yes:
        return
    if not sys.stdin.isatty():
        from ledgerflow.errors import UsageError

        raise UsageError(
            f"refusing to {action} without confirmation",
            hint=f"pass --yes to confirm, or {preview} to see what would change",
        )
    detail = f": {details()}" if details is not None else ""
    click.confirm(f"{action[:1].upper()}{action[1:]}{detail}?", abort=True)


def cli_settings(ctx: click.Context) -> Settings:
    """The project's settings, from ``--config``/``$LEDGERFLOW_CONFIG`` or found upwards."""
    root = ctx.find_root()
    path = (root.obj or {}).get("config_path")
    from ledgerflow.config import load_settings

    return load_settings(path)
