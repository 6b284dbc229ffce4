"""``ledgerflow dashboard``: the extra it needs, the hosts it refuses, the token it checks,
and the page it shows for a ledger it cannot read."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from starlette.testclient import TestClient

from ledgerflow.cli.main import main
from ledgerflow.db import Database
from ledgerflow.errors import UsageError
from ledgerflow.web.app import create_app
from ledgerflow.web.security import check_bind, is_loopback

from .conftest import Board


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.err


def test_without_the_web_extra_the_command_names_it(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    code, err = _run_cli(capsys, "dashboard")
    assert code == 3
    assert err.strip() == ("Error: the dashboard needs the Python package 'uvicorn', which is not installed "
                           "(pip install 'ledgerflow[web]')")


def test_another_host_than_loopback_needs_a_token(capsys: pytest.CaptureFixture[str], tmp_path: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.testing.projects import make_project

    settings = make_project(tmp_path / "p", {"dialect": "sqlite", "path": "ledger.db"})
    monkeypatch.delenv("LEDGERFLOW_DASHBOARD_TOKEN", raising=False)
    code, err = _run_cli(capsys, "--config", str(settings.path), "dashboard", "--host", "0.0.0.0", "--port", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "refusing to serve the dashboard on 0.0.0.0 without an access token" in err
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "example.org", "::"))
    check_bind("10.0.0.1", "a-token")
    with pytest.raises(UsageError):
        check_bind("10.0.0.1", "")


def test_with_a_token_every_request_must_carry_it(board: Board) -> None:
    app = create_app(board.settings, token="s3cret-token")
    with TestClient(app) as client:
        refused = client.get("/runs")
        assert refused.status_code == 401 and "Access token required" in refused.text
        assert refused.headers["content-security-policy"]
        assert client.get("/api/runs").json() == {"error": "an access token is required"}
        assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/static/dashboard.css").status_code == 401
        assert client.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert client.get("/api/runs", headers={"X-Ledgerflow-Token": "s3cret-token"}).status_code == 200
        assert client.get("/runs?token=nope", follow_redirects=False).status_code == 401
        first = client.get("/runs?status=failed&token=s3cret-token", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/runs?status=failed"
        assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=Strict" in first.headers["set-cookie"]
        assert client.get("/runs").status_code == 200  # the cookie now goes with every request
        client.cookies.clear()
        elsewhere = client.get("http://testserver//example.org/x?token=s3cret-token", follow_redirects=False)
        assert elsewhere.headers["location"] == "/example.org/x"  # never to another site
    app.state.reader.close()


def test_a_ledger_newer_than_the_library_gets_one_clear_page(board: Board) -> None:
    database = Database(board.settings, role="admin")
    with database.engine().begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'fee1deadbeef'")
    database.dispose()
    app = create_app(board.settings)
    with TestClient(app) as client:
        for url in ("/runs", f"/runs/{board.example.runs['old']}", "/cache"):
            page = client.get(url)
            assert page.status_code == 503 and "The ledger cannot be read" in page.text
            assert "fee1deadbeef" in page.text and "Traceback" not in page.text
        data: Any = client.get("/api/runs").json()
        assert data["status"] == 503 and "fee1deadbeef" in data["error"]


def test_the_command_is_listed_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    from ledgerflow.cli.dashboard import dashboard
    from ledgerflow.cli.main import COMMANDS

    assert COMMANDS["dashboard"] == ("ledgerflow.cli.dashboard", "dashboard", dashboard.short_help)
    code, _ = _run_cli(capsys, "dashboard", "--help")
    assert code == 0


def test_an_unreachable_database_is_a_503_page(tmp_path: Any) -> None:
    from ledgerflow.testing.projects import make_project

    settings = make_project(tmp_path / "p", {"dialect": "postgresql", "address": "127.0.0.1:1",
                                             "database": "nothing", "user": "nobody:secret-password"})
    app = create_app(settings)
    with TestClient(app) as client:
        page = client.get("/runs")
        assert page.status_code == 503 and "The ledger cannot be read" in page.text
        assert "Traceback" not in page.text and "secret-password" not in page.text


def test_every_static_file_a_page_names_ships_with_the_package() -> None:
    import re
    import tomllib
    from pathlib import Path

    import ledgerflow.web

    web = Path(ledgerflow.web.__file__).parent
    named = {m for page in (web / "templates").glob("*.html")
             for m in re.findall(r'/static/([\w.-]+)', page.read_text())}
    assert {"htmx.min.js", "cytoscape.min.js", "dagre.min.js", "cytoscape-dagre.js", "dashboard.js",
            "dashboard.css", "favicon.svg"} <= named
    assert all((web / "static" / name).is_file() for name in named)
    assert all(path.is_file() for path in (web / "static").iterdir())  # flat: the package-data globs cover it
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["ledgerflow"]
    assert "web/static/*" in data and "web/templates/*" in data
    licences = (web / "static" / "THIRD-PARTY-LICENSES.txt").read_text()
    assert all(lib in licences for lib in ("htmx.org", "cytoscape 3", "dagre 0.8.5", "cytoscape-dagre", "lodash"))
