"""Opening the value store a project's configuration names (``values.store``).

Every part of ledgerflow that reads or writes large values opens its store here, so a run,
``prune``, ``import`` and the workers of a dask cluster all reach the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ledgerflow.config.settings import LEDGER_STORE
from ledgerflow.values.store import DirectoryStore, ValueStore

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledgerflow.config.settings import Settings


def open_store(settings: Settings, *, engine: Engine | None = None) -> ValueStore:
    """The value store ``settings.values.store`` names.

    A folder gives a :class:`DirectoryStore`, ``"ledger"`` a
    :class:`~ledgerflow.values.in_ledger.LedgerStore` (chunks in the ledger database), a URL
    an :class:`~ledgerflow.values.object_store.ObjectStore` (fsspec). ``engine`` (optional)
    is an open engine of the ledger database, reused by the in-ledger store instead of a new
    one. Opening touches nothing: an unreachable store is reported by the first read or
    write. Every store pickles without its connections (for the workers of a cluster).
    """
    where = settings.values.store
    if isinstance(where, Path):
        return DirectoryStore(where if where.is_absolute() else settings.root / where)
    if where == LEDGER_STORE:
        from ledgerflow.values.in_ledger import LedgerStore

        return LedgerStore(settings.default, engine=engine)
    from ledgerflow.values.object_store import ObjectStore

    return ObjectStore(where, settings.values.store_options)
