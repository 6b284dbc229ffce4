"""Large values kept in the ledger database itself: ``lf_value_chunk`` rows.

A value is split into chunks of :data:`~ledgerflow.values.store.CHUNK_SIZE` bytes, rows
``(key, seq, data)`` written in one transaction: a reader sees every chunk of a value or
none. Two runs writing the same key meet on chunk 0 (an insert that only one wins); the
other keeps the first bytes. Reading fetches one chunk at a time, so neither side ever
holds more than the value itself and one chunk. Every checkout that reaches the ledger
reaches its values, which makes this the default for a PostgreSQL ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from ledgerflow.errors import LedgerflowError, ValueStoreError
from ledgerflow.values.store import (
    CHUNK_SIZE,
    Chunk,
    ChunkReader,
    PartsFailed,
    ValueStore,
    buffered,
    check_key,
    guarded,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from ledgerflow.config.settings import DatabaseConfig


class LedgerStore(ValueStore):
    """Values in the ``lf_value_chunk`` table of the ledger database ``db``.

    ``engine`` (optional) is an open engine of that database with the user role; without
    one the store opens its own on first use. The store pickles without its engine, so the
    workers of a cluster open their own connection to the same ledger.
    """

    def __init__(self, db: DatabaseConfig, *, engine: Engine | None = None) -> None:
        self.db = db
        self._engine = engine
        self._owned = False

    def __repr__(self) -> str:
        return f"LedgerStore({self.db.describe()})"

    def describe(self) -> str:
        return f"in the ledger database ({self.db.describe()})"

    def __getstate__(self) -> dict[str, Any]:
        return {"db": self.db, "_engine": None, "_owned": False}

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ledgerflow.db.engines import create_bind_engine

            self._engine = create_bind_engine(self.db, "user")
            self._owned = True
        return self._engine

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for reads: on SQLite a deferred transaction, which a writer holding
        the write lock does not block."""
        with self.engine.connect() as conn:
            yield conn.execution_options(sqlite_begin="DEFERRED")

    def close(self) -> None:
        if self._owned and self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._owned = False

    # -- writing -----------------------------------------------------------------------

    def write(self, key: str, parts: Iterable[Chunk]) -> str:
        from sqlalchemy import insert

        from ledgerflow.ledger.tables import value_chunk

        check_key(key)
        try:
            with self.engine.begin() as conn:
                if self._has(conn, key):
                    return key
                seq = 0
                for data in _gathered(parts):
                    if seq == 0:
                        if not self._claim(conn, key, data):
                            raise _Taken  # another writer stored it first: theirs stays
                    else:
                        conn.execute(insert(value_chunk), {"key": key, "seq": seq, "data": data})
                    seq += 1
                if seq == 0 and not self._claim(conn, key, b""):  # an empty value
                    raise _Taken
        except _Taken:
            return key
        except PartsFailed as failed:
            raise failed.error from None
        except LedgerflowError:
            raise
        except Exception as exc:
            raise self._failed("write", key, exc) from exc
        return key

    def _claim(self, conn: Connection, key: str, data: Chunk) -> bool:
        """Insert chunk 0 unless it is there already (waiting for a writer still at it)."""
        from ledgerflow.ledger.tables import value_chunk

        statement: Any
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement = pg_insert(value_chunk).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(value_chunk).on_conflict_do_nothing()
        result = conn.execute(statement, {"key": key, "seq": 0, "data": data})
        return bool(result.rowcount)

    # -- reading -----------------------------------------------------------------------

    def open(self, key: str) -> IO[bytes]:
        from sqlalchemy import func, select

        from ledgerflow.ledger.tables import value_chunk as t

        check_key(key)
        try:
            with self._reading() as conn:
                count, size = conn.execute(
                    select(func.count(), func.sum(func.length(t.c.data))).where(t.c.key == key)
                ).one()
        except LedgerflowError:
            raise
        except Exception as exc:
            raise self._failed("read", key, exc) from exc
        if not count:
            raise self._missing(key)

        def chunk(seq: int) -> bytes | None:
            if seq >= count:
                return None
            try:
                with self._reading() as conn:
                    data = conn.execute(
                        select(t.c.data).where(t.c.key == key, t.c.seq == seq)
                    ).scalar_one_or_none()
            except LedgerflowError:
                raise
            except Exception as exc:
                raise self._failed("read", key, exc) from exc
            if data is None:
                raise ValueStoreError(
                    f"value {key} {self.describe()} lost its chunk {seq} while it was read",
                    hint="it was pruned meanwhile; rerun the task that made it",
                )
            return bytes(data)

        return buffered(ChunkReader(int(size or 0), chunk))

    def exists(self, key: str) -> bool:
        check_key(key)
        try:
            with self._reading() as conn:
                return self._has(conn, key)
        except LedgerflowError:
            raise
        except Exception as exc:
            raise self._failed("read", key, exc) from exc

    def _has(self, conn: Connection, key: str) -> bool:
        from sqlalchemy import select

        from ledgerflow.ledger.tables import value_chunk as t

        found = conn.execute(select(t.c.seq).where(t.c.key == key, t.c.seq == 0)).first()
        return found is not None

    def delete(self, key: str) -> None:
        from sqlalchemy import delete

        from ledgerflow.ledger.tables import value_chunk as t

        check_key(key)
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(t).where(t.c.key == key))
        except LedgerflowError:
            raise
        except Exception as exc:
            raise self._failed("delete", key, exc) from exc

    def _failed(self, action: str, key: str, exc: Exception) -> ValueStoreError:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = detail[0] if detail else type(exc).__name__
        hint = "check that the ledger database is reachable"
        if "permission denied" in reason or "insufficient privilege" in reason.lower():
            hint = ("the database role lacks the privilege; run `ledgerflow db upgrade` as "
                    "the admin role, or ask an admin to do this")  # fmt: skip
        return ValueStoreError(
            f"cannot {action} value {key} {self.describe()}: {reason[:200]}", hint=hint
        )


class _Taken(Exception):
    """Chunk 0 of the key was stored by another writer."""


def _gathered(parts: Iterable[Chunk]) -> Iterator[Chunk]:
    """The bytes of ``parts`` as chunks of :data:`CHUNK_SIZE` bytes (the last one shorter):
    slices of large parts as they are, small parts gathered into one buffer."""
    pending = bytearray()
    for piece in guarded(parts):
        if not pending and len(piece) == CHUNK_SIZE:
            yield piece
            continue
        room = CHUNK_SIZE - len(pending)
        pending += piece[:room]
        if len(pending) == CHUNK_SIZE:
            yield bytes(pending)
            pending = bytearray(piece[room:])
    if pending:
        yield bytes(pending)
