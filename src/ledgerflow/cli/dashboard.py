"""``ledgerflow dashboard``: serve the read-only web view of the project's ledger."""

from __future__ import annotations

import importlib.util
import threading
import webbrowser

import click

from ledgerflow.cli.output import cli_settings, echo
from ledgerflow.errors import MissingExtraError

#: Modules the dashboard needs, all installed by ``pip install 'ledgerflow[web]'``.
WEB_MODULES = ("starlette", "uvicorn", "jinja2")


def require_web_extra() -> None:
    for module in WEB_MODULES:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError("the dashboard", "web", module)


@click.command(short_help="Serve a web dashboard of runs, graphs, timelines, dataflow and the cache.")
@click.option("--host", default=None, metavar="HOST",
              help="Address to listen on (default: dashboard.host of ledgerflow.yml, else 127.0.0.1); "
                   "anything but loopback needs an access token.")
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Port to listen on (default: dashboard.port of ledgerflow.yml, else 8765).")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a web browser.")
@click.option("--token", envvar="LEDGERFLOW_DASHBOARD_TOKEN", default=None, metavar="TOKEN",
              help="Access token every request must carry (default: $LEDGERFLOW_DASHBOARD_TOKEN, "
                   "else dashboard.token of ledgerflow.yml).")
@click.pass_context
def dashboard(ctx: click.Context, host: str | None, port: int | None, open_browser: bool,
              token: str | None) -> None:
    """Serve the dashboard of the project's ledger (read-only) until Ctrl-C.

    Needs `pip install 'ledgerflow[web]'`. It binds 127.0.0.1 unless --host (or
    dashboard.host in ledgerflow.yml) says otherwise; another address needs an access token
    (--token, $LEDGERFLOW_DASHBOARD_TOKEN or dashboard.token, in that order), which every
    request must then carry (open the printed address once: it sets a cookie).
    """
    require_web_extra()
    from ledgerflow.web.security import check_bind

    settings = cli_settings(ctx)
    options = settings.dashboard
    host = host or options.host
    port = options.port if port is None else port
    token = token or options.token
    check_bind(host, token)
    import uvicorn

    from ledgerflow.web.app import create_app

    app = create_app(settings, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    echo(f"Serving the dashboard of {settings.root} at {url} (Ctrl-C stops it)")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
