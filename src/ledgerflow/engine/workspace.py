"""Where a run works: its settings, working directory, database, cache reader and values.

A run, a dry run and ``explain`` all open the same surroundings: the settings (read from
``ledgerflow.yml`` or given), a ledger at the library's revision, the project directory
as the working directory (relative ``File`` paths resolve there) with the configured file
hash mode, and the database with a reader of its cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledgerflow.config.settings import Settings
    from ledgerflow.db import Database
    from ledgerflow.engine.cache import CacheReader
    from ledgerflow.engine.valuing import Values
    from ledgerflow.engine.written import WrittenRows
    from ledgerflow.ledger.recorder import Recorder

ConfigArg = str | os.PathLike[str] | Mapping[str, Any] | None


def resolve_settings(config: ConfigArg = None, settings: Settings | None = None) -> Settings:
    """``settings`` as given, else read from ``config`` (a path, a mapping, or found)."""
    if settings is not None:
        return settings
    if isinstance(config, Mapping):
        from ledgerflow.config.loader import settings_from_mapping

        return settings_from_mapping(config)
    from ledgerflow.config.loader import load_settings

    return load_settings(None if config is None else Path(config))


def ensure_ledger(settings: Settings) -> None:
    """Refuse a ledger older or newer than the library (or upgrade it with auto_migrate)."""
    from ledgerflow.migrations import ensure_current

    ensure_current(settings)


def project_directory(settings: Settings) -> Path | None:
    """Where tasks run: the directory of ``ledgerflow.yml`` (None for settings made in code)."""
    return settings.root if settings.path is not None else None


@contextmanager
def file_hash_mode(mode: str) -> Iterator[None]:
    """``File`` arguments hash by ``mode`` (``content`` or ``fast``) inside the block."""
    from ledgerflow.values import File

    before = File.hash_mode
    File.hash_mode = mode  # type: ignore[assignment]
    try:
        yield
    finally:
        File.hash_mode = before


@contextmanager
def in_directory(directory: Path | None) -> Iterator[None]:
    """Work in ``directory`` inside the block (nothing changes for None or a missing one)."""
    if directory is None or not directory.is_dir():
        yield
        return
    before = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


@contextmanager
def task_surroundings(settings: Settings) -> Iterator[None]:
    """The project directory and the file hash mode that tasks and their arguments see."""
    with file_hash_mode(settings.cache.file_hash), in_directory(project_directory(settings)):
        yield


@dataclass
class Workspace:
    """The run's database, its SQLAlchemy engine and a reader of its cache."""

    settings: Settings
    database: Database
    engine: Engine
    reader: CacheReader

    def values(self, recorder: Recorder | None = None) -> Values:
        """The value store; with a recorder, values a run produces are recorded once each."""
        from ledgerflow.engine.valuing import Values

        if recorder is None:
            return Values(self.settings, engine=self.engine)
        return Values(self.settings, recorder, stored=self.reader.value_stored, engine=self.engine)

    def written(self, run_id: str = "") -> WrittenRows:
        """Records the rows calls of ``run_id`` write and checks those of cache hits."""
        from ledgerflow.engine.written import WrittenRows

        return WrittenRows(self.database, self.engine, run_id)


@contextmanager
def open_workspace(settings: Settings, *, defer_values: bool = False) -> Iterator[Workspace]:
    """Open the database and its cache reader; both are closed when the block ends."""
    from ledgerflow.db import Database
    from ledgerflow.engine.cache import CacheReader

    database = Database(settings)
    try:
        engine = database.engine()
        reader = CacheReader(engine, defer_values=defer_values)
        try:
            yield Workspace(settings, database, engine, reader)
        finally:
            reader.close()
    finally:
        database.dispose()
