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
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a web browser.")
@click.option("--token", envvar="LEDGERFLOW_DASHBOARD_TOKEN", default=None, metavar="TOKEN",
              help="Access token every request must carry (default: $LEDGERFLOW_DASHBOARD_TOKEN).")
@click.pass_context
def dashboard(ctx: click.Context, host: str, port: int, open_browser: bool, token: str | None) -> None:
    """Serve the dashboard of the project's ledger (read-only) until Ctrl-C.

    Needs `pip install 'ledgerflow[web]'`. It binds 127.0.0.1 unless --host says otherwise;
    another address needs an access token (--token or $LEDGERFLOW_DASHBOARD_TOKEN), which
    every request must then carry (open the printed address once: it sets a cookie).
    """
    require_web_extra()
    from ledgerflow.web.security import check_bind

    check_bind(host, token)
    settings = cli_settings(ctx)
    import uvicorn

    from ledgerflow.web.app import create_app

    app = create_app(settings, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    echo(f"Serving the dashboard of {settings.root} at {url} (Ctrl-C stops it)")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
