"""The dashboard's ASGI application: routes, error pages, the token gate and headers.

``create_app(settings)`` opens the project's ledger read-only once and keeps it for the
life of the process. A ledger the library cannot read (a newer schema, a missing one, a
SQLite file not created yet, which the dashboard never creates) does not stop the server: every page then explains the problem and how to fix it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ledgerflow import api
from ledgerflow.config.settings import Settings
from ledgerflow.errors import (
    AmbiguousIdError,
    DatabaseError,
    LedgerflowError,
    MigrationError,
    NotFoundError,
    SchemaOutdatedError,
    UsageError,
)
from ledgerflow.web import views
from ledgerflow.web.render import HERE, Pages
from ledgerflow.web.security import SecurityHeaders, TokenGate

log = logging.getLogger("ledgerflow.dashboard")


class Reader:
    """The ledger the pages read, opened on first use and kept open."""

    def __init__(self, settings: Settings, ledger: Any = None) -> None:
        self.settings = settings
        self._ledger = ledger
        self._lock = threading.Lock()

    def ledger(self) -> Any:
        if self._ledger is None:
            with self._lock:
                if self._ledger is None:
                    _refuse_missing_file(self.settings)
                    self._ledger = api.open_reader(self.settings)
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def _refuse_missing_file(settings: Settings) -> None:
    """A SQLite ledger that does not exist yet is one clear page (and is not created)."""
    db = settings.default
    if db.dialect == "sqlite" and db.path is not None and str(db.path) != ":memory:" and not db.path.exists():
        raise SchemaOutdatedError(
            f"there is no ledger yet: {db.path} does not exist",
            hint="run `ledgerflow db upgrade` or run a pipeline first; the dashboard only reads",
        )


ROUTES = [
    Route("/", lambda request: RedirectResponse("/runs", status_code=307)),
    Route("/runs", views.runs),
    Route("/runs/{run}", views.run),
    Route("/runs/{run}/live", views.run_live),
    Route("/task-runs/{task_run}", views.task_run),
    Route("/task-runs/{task_run}/logs", views.task_run_logs),
    Route("/task-runs/{task_run}/why", views.task_run_why),
    Route("/calls/{call}", views.call),
    Route("/values/{value}", views.value),
    Route("/files/{path:path}", views.value),
    Route("/cache", views.cache),
    Route("/find", views.find),
    Route("/api/runs", views.runs_json),
    Route("/api/runs-per-day", views.runs_per_day_json),
    Route("/api/runs/{run}", views.run_json),
    Route("/api/runs/{run}/graph", views.run_graph_json),
    Route("/api/runs/{run}/timeline", views.run_timeline_json),
    Route("/api/task-runs/{task_run}", views.task_run_json),
    Route("/api/task-runs/{task_run}/logs", views.task_run_logs_json),
    Route("/api/task-runs/{task_run}/why", views.task_run_why_json),
    Route("/api/calls/{call}", views.call_json),
    Route("/api/values/{value}", views.value_json),
    Route("/api/files/{path:path}", views.value_json),
    Route("/api/dataflow", views.dataflow_json),
    Route("/api/cache", views.cache_json),
    Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
]

_STATUS = [(NotFoundError, 404), (AmbiguousIdError, 400), (UsageError, 400), (MigrationError, 503),
           (DatabaseError, 503)]
_TITLES = {400: "Bad request", 401: "Access token required", 404: "Not found", 405: "Method not allowed",
           500: "Internal error", 503: "The ledger cannot be read"}


def _error(request: Request, status: int, message: str, hint: str | None = None) -> Response:
    title = _TITLES.get(status, "Error")
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message, "hint": hint, "status": status}, status_code=status)
    pages: Pages = request.app.state.pages
    return pages.render(request, "error.html", status_code=status, title=title, message=message, hint=hint)


async def _ledgerflow_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LedgerflowError)
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    return _error(request, status, exc.message, exc.hint)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"no page at {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return _error(request, exc.status_code, message)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("dashboard error on %s", request.url.path)
    return _error(request, 500, "the dashboard hit an unexpected error; the server log has the details")


def create_app(settings: Settings, *, token: str | None = None, ledger: Any = None) -> Starlette:
    """The dashboard for the project of ``settings``; with ``token``, every request needs it."""
    middleware = [Middleware(SecurityHeaders)]
    if token:
        middleware.append(Middleware(TokenGate, token=token))
    app = Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers={LedgerflowError: _ledgerflow_error, HTTPException: _http_error,
                            Exception: _unexpected},
    )
    app.state.reader = Reader(settings, ledger)
    app.state.pages = Pages()
    app.state.graphs = views.GraphCache()
    return app
