"""Templates (Jinja2, autoescaped) and the small formatting helpers the pages share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ledgerflow import api
from ledgerflow._version import __version__

HERE = Path(__file__).parent


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(n)


def entry_arguments(arguments: Any) -> str:
    """A run's recorded entry arguments (a mapping, or its JSON text) as ``k=v, ...``."""
    try:
        args = json.loads(arguments) if isinstance(arguments, str | bytes) else (arguments or {})
    except ValueError:
        return str(arguments)
    if not isinstance(args, dict):
        return str(args)
    return ", ".join(f"{k}={v}" for k, v in args.items())


def cut(text: Any, width: int = 80) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def path_url(path: str) -> str:
    """The dashboard page of a file path (relative or absolute, as the ledger stores it)."""
    return "/files/" + quote(path, safe="/")


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, duration=api.format_duration, size=size, cut=cut, entry_arguments=entry_arguments,
                       path_url=path_url)
    env.globals.update(RUN_STATUSES=api.RUN_STATUSES, TASK_RUN_STATUSES=api.TASK_RUN_STATUSES, version=__version__,
                       urlencode=urlencode)
    return env


class Pages:
    """Renders a template into an HTML response."""

    def __init__(self) -> None:
        self.env = make_environment()

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        template = self.env.get_template(name)
        html = template.render(request=request, **context)
        return HTMLResponse(html, status_code=status_code)
