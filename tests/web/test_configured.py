"""The ``dashboard:`` section of ledgerflow.yml (its token is a secret like a password), and a
project whose SQLite ledger does not exist yet (the dashboard never creates it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from starlette.testclient import TestClient

import ledgerflow
from ledgerflow import migrations, task
from ledgerflow.cli.main import main
from ledgerflow.config import load_settings
from ledgerflow.errors import ConfigError
from ledgerflow.testing.projects import make_project
from ledgerflow.web.app import create_app

TOKEN = "Cfg-T0ken-only-in-the-file"


@task
def double(x: int) -> int:
    return 2 * x


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``ledgerflow dashboard`` hands to uvicorn, instead of serving."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(app=app, **options))
    monkeypatch.delenv("LEDGERFLOW_DASHBOARD_TOKEN", raising=False)
    return seen


def test_a_token_only_in_the_config_is_required_and_never_shown(
    tmp_path: Path, database_entry: dict[str, Any], served: dict[str, Any],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOARD_TOKEN", TOKEN)
    settings = make_project(tmp_path / "p", database_entry,
                            dashboard={"host": "0.0.0.0", "port": 9001, "token": "${BOARD_TOKEN}"})
    assert settings.dashboard.token == TOKEN and TOKEN not in repr(settings)
    migrations.upgrade(settings)
    assert ledgerflow.run(double(4), settings=settings) == 8

    code, out, err = _cli(capsys, "--config", str(settings.path), "dashboard")
    assert code == 0, err
    assert served["host"] == "0.0.0.0" and served["port"] == 9001
    with TestClient(served["app"]) as client:
        assert client.get("/runs").status_code == 401
        assert client.get("/api/runs").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        runs = client.get("/api/runs", headers=auth)
        assert runs.status_code == 200 and len(runs.json()) == 1
        run_id = runs.json()[0]["id"]
        for url in ("/runs", f"/runs/{run_id}", f"/api/runs/{run_id}", f"/api/runs/{run_id}/graph",
                    "/cache", "/api/cache"):
            page = client.get(url, headers=auth)
            assert page.status_code == 200, url
            assert TOKEN not in page.text, url
    served["app"].state.reader.close()

    for args in (("config", "show"), ("config", "show", "--json")):
        code, out, err = _cli(capsys, "--config", str(settings.path), *args)
        assert code == 0, err
        assert TOKEN not in out + err and "dashboard" in out
    shown = json.loads(_cli(capsys, "--config", str(settings.path), "config", "show", "--json")[1])
    assert shown["dashboard"] == {"host": "0.0.0.0", "port": 9001, "token": "***"}

    engine = sa.create_engine(_url(settings))
    with engine.connect() as conn:
        stored = [row[0] for row in conn.execute(sa.text("SELECT yaml FROM lf_configuration"))]
    engine.dispose()
    assert stored and all("dashboard" in text and TOKEN not in text for text in stored)


def _url(settings: Any) -> sa.URL:
    from ledgerflow.db.engines import database_url

    return database_url(settings.default, "admin" if settings.default.admin else "user")


def test_the_command_line_and_the_environment_come_before_the_config(
    tmp_path: Path, served: dict[str, Any], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_project(tmp_path / "p", {"dialect": "sqlite", "path": "ledger.db"},
                            dashboard={"host": "0.0.0.0", "token": "from-config"})
    config = str(settings.path)

    def token_taken(*args: str) -> str:
        code, out, err = _cli(capsys, "--config", config, "dashboard", *args)
        assert code == 0, err
        return out.strip().split("?token=")[1].split()[0]  # the address printed to open

    assert token_taken() == "from-config" and served["port"] == 8765
    monkeypatch.setenv("LEDGERFLOW_DASHBOARD_TOKEN", "from-env")
    assert token_taken("--port", "9") == "from-env" and served["port"] == 9
    assert token_taken("--token", "from-option") == "from-option"
    monkeypatch.delenv("LEDGERFLOW_DASHBOARD_TOKEN")
    (tmp_path / "p" / "ledgerflow.yml").write_text(
        "databases: {default: {dialect: sqlite, path: ledger.db}}\ndashboard: {host: 0.0.0.0}\n")
    code, _, err = _cli(capsys, "--config", config, "dashboard")
    assert code == 2 and "refusing to serve the dashboard on 0.0.0.0 without an access token" in err
    assert "dashboard.token" in err
    assert not (tmp_path / "p" / "ledger.db").exists()


@pytest.mark.parametrize(("section", "message"), [
    ("{token: 12}", "dashboard.token: expected a string, got integer"),
    ("{port: 70000}", "dashboard.port: expected a port from 0 to 65535, got 70000"),
    ("{port: many}", "dashboard.port: expected an integer >= 0, got string"),
    ("{hots: 0.0.0.0}", "dashboard.hots: unknown key, allowed keys: host, port, token"),
    ("[1]", "dashboard: expected a mapping, got list"),
])
def test_the_dashboard_section_is_checked(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "ledgerflow.yml"
    path.write_text(f"databases: {{default: {{dialect: sqlite, path: l.db}}}}\ndashboard: {section}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.message == f"{path}: {message}"


def test_a_missing_sqlite_ledger_is_one_clear_page_and_is_not_created(tmp_path: Path) -> None:
    settings = make_project(tmp_path / "p", {"dialect": "sqlite", "path": "ledgerflow.db"})
    app = create_app(settings)
    with TestClient(app) as client:
        for url in ("/runs", "/runs/abc123", "/cache"):
            page = client.get(url)
            assert page.status_code == 503 and "Traceback" not in page.text
            assert "there is no ledger yet" in page.text and "ledgerflow db upgrade" in page.text
        data = client.get("/api/runs").json()
        assert data["status"] == 503 and "ledgerflow db upgrade" in data["hint"]
        assert not (tmp_path / "p" / "ledgerflow.db").exists()
        migrations.upgrade(settings)
        assert client.get("/api/runs").json() == []  # the same server reads it once it exists
    app.state.reader.close()


def test_readers_never_create_a_missing_sqlite_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_project(tmp_path / "p", {"dialect": "sqlite", "path": "ledgerflow.db"})
    code, _, err = _cli(capsys, "--config", str(settings.path), "runs")
    assert code != 0 and "ledgerflow db upgrade" in err and "Traceback" not in err
    assert not (tmp_path / "p" / "ledgerflow.db").exists()
    migrations.upgrade(settings)  # the pooled read-only connection now opens the file
    code, out, err = _cli(capsys, "--config", str(settings.path), "runs", "--json")
    assert code == 0 and json.loads(out) == [], err
