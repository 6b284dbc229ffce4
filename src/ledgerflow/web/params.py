"""Reading a request's query string into the API's filters. The API checks them: bad
input is a UsageError, which the app answers with 400."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from ledgerflow.errors import UsageError

#: Query parameters the runs view understands.
RUN_FILTERS = ("status", "task", "tag", "since", "until")


def integer(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{name} must be between {low} and {high}, got {value}")
    return value


def run_filters(request: Request) -> dict[str, Any]:
    """status (comma separated or repeated), task, tag (KEY=VALUE, repeated), since, until."""
    query = request.query_params
    filters: dict[str, Any] = {}
    statuses = [s for item in query.getlist("status") for s in item.split(",") if s.strip()]
    if statuses:
        filters["status"] = statuses
    task = (query.get("task") or "").strip()
    if task:
        filters["task"] = task
    tags = [t for item in query.getlist("tag") for t in item.split() if t]
    if tags:
        filters["tag"] = tags
    for name in ("since", "until"):
        text = (query.get(name) or "").strip()
        if text:
            filters[name] = text
    return filters


def filter_values(request: Request) -> dict[str, Any]:
    """What the filter form shows: the query's own text, for every filter."""
    query = request.query_params
    return {
        "status": [s for item in query.getlist("status") for s in item.split(",") if s.strip()],
        "task": query.get("task", ""),
        "tag": " ".join(query.getlist("tag")),
        "since": query.get("since", ""),
        "until": query.get("until", ""),
    }


def filter_query(request: Request, **changes: str | None) -> str:
    """The current filters (and page size) as a query string, with ``changes`` applied."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k in (*RUN_FILTERS, "limit") and v]
    for key, value in changes.items():
        items = [(k, v) for k, v in items if k != key]
        if value:
            items.append((key, value))
    return urlencode(items)
