"""pytest fixtures for testing pipelines against a real, migrated ledger.

Enable them next to the database fixtures::

    pytest_plugins = ["ledgerflow.testing.plugin", "ledgerflow.testing.pipelines"]

``ledger_settings``
    The :class:`~ledgerflow.config.settings.Settings` of a temporary project (in ``tmp_path``)
    whose ledger (SQLite, then PostgreSQL) is migrated to the library's head: pass it to
    ``ledgerflow.run(expr, settings=ledger_settings)``. The ledger is a copy of one migrated
    once per test session (``migrated_database``), so it costs about what an empty database
    does.
``ledger``
    A :class:`LedgerRows` reading that ledger (``ledger.rows("lf_task_run", status="done")``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.config.settings import Settings


class LedgerRows:
    """Plain reads of the ``lf_`` tables, for assertions in tests."""

    def __init__(self, settings: Settings) -> None:
        from ledgerflow.db import Database

        self.settings = settings
        self.database = Database(settings)

    def rows(self, table: str, order_by: str | None = None, **equal: Any) -> list[dict[str, Any]]:
        """Every row of ``table`` whose columns equal ``equal``, as dicts."""
        from sqlalchemy import select

        from ledgerflow.ledger.schema import LedgerBase

        model = LedgerBase.metadata.tables[table]
        query = select(model).where(*(model.c[k] == v for k, v in equal.items()))
        if order_by is not None:
            query = query.order_by(model.c[order_by])
        with self.database.engine().connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def count(self, table: str, **equal: Any) -> int:
        return len(self.rows(table, **equal))

    def close(self) -> None:
        self.database.dispose()


@pytest.fixture
def ledger_settings(
    request: pytest.FixtureRequest, database_dialect: str, tmp_path: Path
) -> Settings:
    """Settings of a temporary project with a migrated ledger (SQLite, then PostgreSQL).

    The ledger is ``migrated_database``; when the test also uses ``fresh_database`` (or
    ``database_entry``, ``project_dir``), it is that database, migrated here, instead.
    """
    from ledgerflow.config.loader import load_settings

    if "fresh_database" in request.fixturenames:
        from ledgerflow.migrations import upgrade

        project_dir: Path = request.getfixturevalue("project_dir")
        settings = load_settings(project_dir / "ledgerflow.yml")
        upgrade(settings)
        return settings
    from ledgerflow.testing.plugin import write_config

    entry = request.getfixturevalue("migrated_database_entry")
    return load_settings(write_config(tmp_path, entry))


@pytest.fixture
def ledger(ledger_settings: Settings) -> Iterator[LedgerRows]:
    """Reads of the ``ledger_settings`` ledger."""
    reader = LedgerRows(ledger_settings)
    try:
        yield reader
    finally:
        reader.close()
