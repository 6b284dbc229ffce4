"""The dashboard's views: each page has a stable URL and a JSON twin under ``/api``.

Handlers are plain functions (Starlette runs them in its thread pool) that call
:mod:`ledgerflow.api`, then render a template or return the records' ``to_json()`` shapes
(the same objects the CLI prints with ``--json``; see docs/dashboard.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ledgerflow import api
from ledgerflow.errors import NotFoundError, UsageError
from ledgerflow.web import charts, params
from ledgerflow.web.render import Pages

#: Runs per page of the runs view.
PAGE = 50
#: Days the runs-per-day and cache charts cover.
DAYS = 30
#: Failed task runs a run's page lists.
FAILURES = 50
#: Log lines per page of a task run.
LOG_PAGE = 200


class GraphCache:
    """The graphs of finished runs, least recently used dropped first."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, tuple[str, ...]], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, tuple[str, ...]]) -> dict[str, Any] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, tuple[str, ...]], data: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = data
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _book(request: Request) -> Any:
    return request.app.state.reader.ledger()


def _pages(request: Request) -> Pages:
    return request.app.state.pages  # type: ignore[no-any-return]


def _json(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status_code, headers=headers)


def _fragment(request: Request) -> bool:
    """Whether htmx asked for a piece of a page (not a history restore, which wants it all)."""
    return (request.headers.get("hx-request") == "true"
            and request.headers.get("hx-history-restore-request") != "true")


# -- runs -------------------------------------------------------------------------------------


def _runs_page(request: Request) -> Any:
    filters = params.run_filters(request)
    limit = params.integer(request, "limit", PAGE, low=1, high=500)
    after = request.query_params.get("after") or None
    return api.runs_page(_book(request), after=after, limit=limit, **filters)


def runs(request: Request) -> Response:
    page = _runs_page(request)
    next_url = None
    if page.next_cursor:
        next_url = "/runs?" + params.filter_query(request, after=page.next_cursor)
    context = {"page": page, "next_url": next_url, "filters": params.filter_values(request),
               "run_states": api.RUN_STATUSES}
    if _fragment(request):
        return _pages(request).render(request, "_runs_rows.html", **context)
    per_day = api.runs_per_day(_book(request), days=DAYS)
    chart = charts.stacked_days(per_day, api.RUN_STATUSES)
    return _pages(request).render(request, "runs.html", chart=chart, days=DAYS, **context)


def runs_json(request: Request) -> Response:
    page = _runs_page(request)
    headers = {}
    if page.next_cursor:
        headers["Link"] = f'</api/runs?{params.filter_query(request, after=page.next_cursor)}>; rel="next"'
    return _json([run.to_json() for run in page.runs], headers=headers)


def runs_per_day_json(request: Request) -> Response:
    days = params.integer(request, "days", DAYS, low=1, high=366)
    return _json([d.to_json() for d in api.runs_per_day(_book(request), days=days)])


# -- one run -----------------------------------------------------------------------------------


def _run(request: Request) -> Any:
    book = _book(request)
    return api.run_info(book, api.run_id(book, request.path_params["run"]))


def _run_context(request: Request) -> dict[str, Any]:
    book = _book(request)
    run = _run(request)  # the timeline and failures then look the run up by its full id
    failures = (api.query(book, run=run.id, status=("failed", "interrupted"), limit=FAILURES)
                if run.status != "done" else [])
    timeline = api.run_timeline(book, run.id)
    return {"run": run, "failures": failures, "timeline": timeline, "gantt": charts.gantt(timeline),
            "silent": api.stale_seconds(book, run),
            "states": api.TASK_RUN_STATUSES}


def run(request: Request) -> Response:
    context = _run_context(request)
    if context["run"].id != request.path_params["run"]:
        return RedirectResponse(f"/runs/{context['run'].id}", status_code=307)
    return _pages(request).render(request, "run.html", **context)


def run_live(request: Request) -> Response:
    """The part of a run's page that changes while it runs; htmx polls it (HTTP 286 stops
    the polling once the run has finished)."""
    context = _run_context(request)
    response = _pages(request).render(request, "_run_live.html", **context)
    if context["run"].status != "running" or context["silent"] is not None:
        response.status_code = 286
    return response


def run_json(request: Request) -> Response:
    return _json(_run(request).to_json())


def run_graph_json(request: Request) -> Response:
    """A run's graph. A finished run's graph never changes: it is computed once per process
    (per set of expanded tasks) and kept in a small cache."""
    expand = sorted({t for item in request.query_params.getlist("expand") for t in item.split(",") if t})
    book = _book(request)
    key = (api.run_id(book, request.path_params["run"]), tuple(expand))
    cache: GraphCache = request.app.state.graphs
    data = cache.get(key)
    if data is None:
        graph = api.run_graph(book, key[0], expand=expand)
        data = graph.to_json()
        if graph.finished:
            cache.put(key, data)
    return _json(data)


def run_timeline_json(request: Request) -> Response:
    return _json(api.run_timeline(_book(request), request.path_params["run"]).to_json())


# -- task runs ---------------------------------------------------------------------------------


def task_run(request: Request) -> Response:
    book = _book(request)
    info = api.task_run_info(book, request.path_params["task_run"])
    logs = api.log_page(book, info.id, after=0, limit=LOG_PAGE)
    files = api.task_run_files(book, info.id)
    return _pages(request).render(request, "task_run.html", tr=info, logs=logs, files=files)


def task_run_json(request: Request) -> Response:
    book = _book(request)
    info = api.task_run_info(book, request.path_params["task_run"])
    return _json({**info.to_json(), "files": api.task_run_files(book, info.id).to_json()})


def _why(request: Request) -> str:
    return api.why(_book(request), request.path_params["task_run"])  # type: ignore[no-any-return]


def task_run_why(request: Request) -> Response:
    """Why the task run executed or came from the cache: loaded after its page (it looks
    through earlier task runs of the same task)."""
    return _pages(request).render(request, "_why.html", why=_why(request))


def task_run_why_json(request: Request) -> Response:
    return _json({"task_run": request.path_params["task_run"], "why": _why(request)})


def _log_page(request: Request) -> Any:
    after = params.integer(request, "after", 0, low=0, high=2**62)
    limit = params.integer(request, "limit", LOG_PAGE, low=1, high=500)
    return api.log_page(_book(request), request.path_params["task_run"], after=after, limit=limit)


def task_run_logs(request: Request) -> Response:
    page = _log_page(request)
    return _pages(request).render(request, "_log_lines.html", logs=page,
                                  task_run=request.path_params["task_run"])


def task_run_logs_json(request: Request) -> Response:
    page = _log_page(request)
    return _json({"lines": [line.to_json() for line in page.lines], "next_after": page.next_after,
                  "total": page.total})


# -- values and files --------------------------------------------------------------------------


def _direction(request: Request) -> bool:
    direction = request.query_params.get("direction", "upstream")
    if direction not in ("upstream", "downstream"):
        raise UsageError(f"direction must be upstream or downstream, got {direction[:40]!r}")
    return direction == "downstream"


def _entity(request: Request) -> Any:
    if "path" in request.path_params:
        target = request.path_params["path"]
        record = api.show(_book(request), target)
        if getattr(record, "kind", "") != "file":
            raise NotFoundError(f"no file {target!r} in the ledger")
    else:
        target = request.path_params["value"]
        record = api.show(_book(request), target)
        if getattr(record, "kind", "") not in ("value", "file"):
            raise NotFoundError(f"no value {target!r} in the ledger",
                                hint=f"{record.kind.replace('_', ' ')}s have their own page")
    return record


def value(request: Request) -> Response:
    record = _entity(request)
    downstream = _direction(request)
    flow = api.dataflow(_book(request), record.hash, downstream=downstream)
    return _pages(request).render(request, "value.html", record=record, flow=flow, downstream=downstream,
                                  target=record.hash)


def value_json(request: Request) -> Response:
    record = _entity(request)
    return _json(record.to_json())


def dataflow_json(request: Request) -> Response:
    target = request.query_params.get("target", "")
    if not target:
        raise UsageError("give the value or file to trace: ?target=HASH_OR_PATH")
    limit = params.integer(request, "max", 1000, low=1, high=10_000)
    flow = api.dataflow(_book(request), target, downstream=_direction(request), max_nodes=limit)
    return _json(flow.to_json())


def find(request: Request) -> Response:
    """Where the search box goes: the page of whatever record an id, prefix or path names."""
    text = (request.query_params.get("q") or "").strip()
    if not text:
        return RedirectResponse("/runs", status_code=303)
    found = api.resolve(_book(request), text)
    pages = {"run": "/runs/", "task_run": "/task-runs/", "value": "/values/", "file": "/values/",
             "call": "/calls/"}
    return RedirectResponse(pages[found.record_kind] + found.id, status_code=303)


def call(request: Request) -> Response:
    record = api.show(_book(request), request.path_params["call"])
    if record.kind != "call":
        raise NotFoundError(f"no call {request.path_params['call']!r} in the ledger")
    return _pages(request).render(request, "call.html", call=record)


def call_json(request: Request) -> Response:
    record = api.show(_book(request), request.path_params["call"])
    if record.kind != "call":
        raise NotFoundError(f"no call {request.path_params['call']!r} in the ledger")
    return _json(record.to_json())


# -- cache -------------------------------------------------------------------------------------


def _cache(request: Request) -> tuple[list[Any], dict[str, Any]]:
    book = _book(request)
    return list(api.cache_list(book.settings).tasks), api.cache_per_day(book, days=DAYS)


def cache(request: Request) -> Response:
    stats, per_day = _cache(request)
    bars = {task: charts.stacked_days(days, ("hits", "misses"), width=300, height=50, noun="")
            for task, days in per_day.items()}
    biggest = max([s.size for s in stats] or [0])
    return _pages(request).render(request, "cache.html", stats=stats, bars=bars, biggest=biggest)


def cache_json(request: Request) -> Response:
    stats, per_day = _cache(request)
    tasks = [{**{k: getattr(s, k) for k in s.__dataclass_fields__}, "hit_rate": s.hit_rate} for s in stats]
    for task in tasks:
        task["latest_entry"] = task["latest_entry"].isoformat() if task["latest_entry"] else None
    return _json({"tasks": tasks, "per_day": {t: [d.to_json() for d in days] for t, days in per_day.items()}})
