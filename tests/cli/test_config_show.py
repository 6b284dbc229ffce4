"""``ledgerflow config show``: the effective configuration, never a password."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ADMIN_PW = "Adm1n-S3cret"
USER_PW = "Us3r-S3cret"
OPTION_PW = "Opt-S3cret"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose catalog database comes from an !include and ${VAR}s."""
    (tmp_path / "databases").mkdir()
    (tmp_path / "databases" / "catalog.yml").write_text(
        "dialect: postgresql\n"
        "address: db.example.org:6543\n"
        "database: ${CATALOG_DB:-catalog}\n"
        "admin: cat_admin:${CATALOG_ADMIN_PW}\n"
        "user: {name: cat_user, password: '" + USER_PW + "'}\n"
        "options: {sslmode: require, password: " + OPTION_PW + "}\n"
    )
    (tmp_path / "ledgerflow.yml").write_text(
        "databases:\n"
        "  default: {dialect: sqlite, path: data/ledger.db}\n"
        "  catalog: !include databases/catalog.yml\n"
        "plugins: [pipeline]\n"
        "executor: {kind: threads, workers: 3}\n"
    )
    monkeypatch.setenv("CATALOG_ADMIN_PW", ADMIN_PW)
    monkeypatch.delenv("CATALOG_DB", raising=False)
    monkeypatch.delenv("LEDGERFLOW_CONFIG", raising=False)
    return tmp_path


def _no_secret(text: str) -> None:
    for secret in (ADMIN_PW, USER_PW, OPTION_PW):
        assert secret not in text


def test_config_show_yaml(
    ledgerflow: Callable[..., Any], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "databases")  # found by walking up
    result = ledgerflow("config", "show")
    assert result.exit_code == 0, result.output
    _no_secret(result.output)
    assert result.stdout.startswith(f"# {project / 'ledgerflow.yml'}\n")
    shown = yaml.safe_load(result.stdout)
    catalog = shown["databases"]["catalog"]
    assert catalog["address"] == "db.example.org:6543"
    assert catalog["database"] == "catalog"
    assert catalog["admin"] == "cat_admin:***" and catalog["user"] == "cat_user:***"
    assert catalog["options"] == {"sslmode": "require", "password": "***"}
    assert shown["databases"]["default"]["path"] == str(project / "data" / "ledger.db")
    assert shown["executor"]["kind"] == "threads" and shown["plugins"] == ["pipeline"]


def test_config_show_json_with_config_option(
    ledgerflow: Callable[..., Any], project: Path, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    monkeypatch.setenv("CATALOG_DB", "survey")
    result = ledgerflow("--config", str(project / "ledgerflow.yml"), "config", "show", "--json")
    assert result.exit_code == 0, result.output
    _no_secret(result.output)
    shown = json.loads(result.stdout)
    assert shown["path"] == str(project / "ledgerflow.yml")
    assert shown["databases"]["catalog"]["database"] == "survey"
    assert shown["databases"]["catalog"]["admin"] == "cat_admin:***"
    assert list(shown) == sorted(shown)


def test_config_show_from_environment_variable(
    ledgerflow: Callable[..., Any], project: Path, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    monkeypatch.setenv("LEDGERFLOW_CONFIG", str(project / "ledgerflow.yml"))
    result = ledgerflow("config", "show")
    assert result.exit_code == 0, result.output
    assert "db.example.org" in result.stdout
    _no_secret(result.output)


def test_config_show_errors_are_one_line(
    ledgerflow: Callable[..., Any], project: Path, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("empty"))
    missing = ledgerflow("config", "show")
    assert missing.exit_code == 3
    assert missing.stderr.startswith("Error: no ledgerflow.yml")
    assert "ledgerflow init" in missing.stderr and len(missing.stderr.splitlines()) == 1

    monkeypatch.delenv("CATALOG_ADMIN_PW")
    unset = ledgerflow("--config", str(project / "ledgerflow.yml"), "config", "show")
    assert unset.exit_code == 3 and len(unset.stderr.splitlines()) == 1
    assert "CATALOG_ADMIN_PW" in unset.stderr and "catalog.yml" in unset.stderr
    _no_secret(unset.output)
