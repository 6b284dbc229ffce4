"""Opening the value store a project's configuration names (``values.store``).

Every part of ledgerflow that reads or writes large values opens its store here, so a run,
``prune``, ``import`` and the workers of a dask cluster all reach the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerflow.errors import ConfigError
from ledgerflow.values.store import DirectoryStore, ValueStore

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledgerflow.config.settings import Settings


def open_store(settings: Settings, *, engine: Engine | None = None) -> ValueStore:
    """The value store ``settings.values.store`` names.

    A folder gives a :class:`DirectoryStore`. ``engine`` (optional) is an open engine of the
    ledger database, reused by the in-ledger store instead of a new one. Opening touches
    nothing: an unreachable store is reported by the first read or write.
    """
    where = settings.values.store
    if isinstance(where, Path):
        return DirectoryStore(where if where.is_absolute() else settings.root / where)
    raise ConfigError(
        f"{_source(settings)}: values.store {_shown(where)} is not a store this version can open",
        hint="name a folder or a file:// URL",
    )


def _source(settings: Settings) -> str:
    return str(settings.path) if settings.path is not None else "<settings>"


def _shown(where: Any) -> str:
    from ledgerflow.config.settings import hide_url_passwords

    return repr(hide_url_passwords(str(where)))
