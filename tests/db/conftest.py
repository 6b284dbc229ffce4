"""Fixtures for the database layer: a clean model registry and a database per dialect."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.config import Settings, settings_from_mapping
from ledgerflow.db import Database, Model
from ledgerflow.db.model import bind_of, clear_models


@pytest.fixture
def clean_models() -> Iterator[None]:
    """Every test defines its own models on an empty registry."""
    clear_models()
    yield
    clear_models()


def make_settings(tmp_path: Path, databases: dict[str, dict[str, Any]]) -> Settings:
    return settings_from_mapping({"databases": databases}, path=tmp_path / "ledgerflow.yml")


def create_tables(settings: Settings) -> None:
    """Create every model's table in its bind, as the admin role (as a migration would)."""
    with Database(settings, role="admin") as admin:
        for bind in settings.databases:
            tables = [t for t in Model.metadata.sorted_tables if bind_of(t) == bind]
            if tables:
                Model.metadata.create_all(admin.engine(bind), tables=tables)


@pytest.fixture
def open_databases(
    tmp_path: Path, clean_models: None
) -> Iterator[Callable[[dict[str, dict[str, Any]]], Database]]:
    """``open_databases({bind: entry})``: create the tables of the models defined so far, then
    open the databases with the *user* role."""
    opened: list[Database] = []

    def open_(databases: dict[str, dict[str, Any]]) -> Database:
        settings = make_settings(tmp_path, databases)
        create_tables(settings)
        database = Database(settings)
        opened.append(database)
        return database

    yield open_
    for database in opened:
        database.dispose()


@pytest.fixture
def open_db(
    open_databases: Callable[[dict[str, dict[str, Any]]], Database],
    database_entry: dict[str, Any],
) -> Callable[..., Database]:
    """``open_db(**other_binds)``: like ``open_databases`` with ``default`` the test's fresh
    database (SQLite, then PostgreSQL)."""

    def open_(**binds: dict[str, Any]) -> Database:
        return open_databases({"default": database_entry, **binds})

    return open_
