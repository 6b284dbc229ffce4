"""Fixtures for the migration tests: a blog plugin project on each dialect, SQL helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.testing.projects import make_project, write_plugin

BLOG_V1 = """
from sqlalchemy import Column, ForeignKey, Integer, String, Text
from ledgerflow.db import Model

class Author(Model):
    id = Column(Integer, primary_key=True)
    name = Column(String(50), nullable=False, unique=True)

class Post(Model):
    id = Column(Integer, primary_key=True)
    author_id = Column(ForeignKey("author.id", ondelete="CASCADE"), index=True)
    body = Column(Text)
"""

Sql = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture
def blog(tmp_path: Path, database_entry: dict[str, Any], fresh_models: None) -> Settings:
    """A project whose only plugin, ``blog``, has models but no migration yet."""
    write_plugin(tmp_path, "blog", BLOG_V1)
    return make_project(tmp_path, database_entry, plugins=["blog"])


def run_sql(settings: Settings, statement: str, bind: str = "default", **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement as admin and commit; rows when it returns any."""
    database = Database(settings, role="admin")
    try:
        with database.engine(bind).begin() as connection:
            result = connection.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        database.dispose()


def table_names(settings: Settings, bind: str = "default") -> set[str]:
    database = Database(settings, role="admin")
    try:
        with database.engine(bind).connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        database.dispose()


def column_names(settings: Settings, table: str, bind: str = "default") -> list[str]:
    database = Database(settings, role="admin")
    try:
        with database.engine(bind).connect() as connection:
            return [c["name"] for c in inspect(connection).get_columns(table)]
    finally:
        database.dispose()


@pytest.fixture
def sql() -> Sql:
    return run_sql


@pytest.fixture
def tables() -> Callable[..., set[str]]:
    return table_names


@pytest.fixture
def columns() -> Callable[..., list[str]]:
    return column_names


@pytest.fixture
def second_entry(
    request: pytest.FixtureRequest, database_entry: dict[str, Any], tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Another empty database on the same dialect as ``database_entry``."""
    if database_entry["dialect"] == "sqlite":
        yield {"dialect": "sqlite", "path": str(tmp_path / "catalog.db")}
        return
    session = request.getfixturevalue("pg_session")
    database = session.create_database()
    try:
        yield database.config_entry()
    finally:
        session.release(database)
