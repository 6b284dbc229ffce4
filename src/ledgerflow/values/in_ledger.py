"""Large values kept in the ledger database itself: ``lf_value_chunk`` rows.

A value is split into chunks of :data:`~ledgerflow.values.store.CHUNK_SIZE` bytes, rows
``(key, seq, data)`` written in one transaction: a reader sees every chunk of a value or
none. Two runs writing the same key meet on chunk 0 (an insert that only one wins); the
other keeps the first bytes. Reading fetches one chunk at a time, so neither side ever
holds more than the value itself and one chunk. Every checkout that reaches the ledger
reaches its values, which makes this the default for a PostgreSQL ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from ledgerflow.errors import LedgerflowError, ValueStoreError
from ledgerflow.values.store import (
    CHUNK_SIZE,
    Chunk,
    ChunkReader,
    Upload,
    ValueStore,
    buffered,
    check_key,
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

    def writer(self, key: str) -> Upload:
        return _ChunkUpload(self, check_key(key))

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


class _ChunkUpload(Upload):
    """Chunks of one value, inserted in one transaction committed when the value is whole.
    Chunk 0 goes first, with an insert that only one writer of the key wins: a writer that
    loses drops the rest (the winner's value stays)."""

    def __init__(self, store: LedgerStore, key: str) -> None:
        super().__init__()
        self.store, self.key = store, key
        self.seq = 0
        self.pending = bytearray()
        try:
            self.conn = store.engine.connect()
            self.transaction = self.conn.begin()
            self.stored = store._has(self.conn, key)
        except LedgerflowError:
            raise
        except Exception as exc:
            raise store._failed("write", key, exc) from exc

    def _send(self, piece: memoryview) -> None:
        if not self.pending and len(piece) == CHUNK_SIZE:
            self._insert(piece)
            return
        room = CHUNK_SIZE - len(self.pending)
        self.pending += piece[:room]
        if len(self.pending) == CHUNK_SIZE:
            self._insert(bytes(self.pending))
            self.pending = bytearray(piece[room:])

    def _insert(self, data: Chunk) -> None:
        from sqlalchemy import insert

        from ledgerflow.ledger.tables import value_chunk

        if self.stored:
            return
        try:
            if self.seq == 0:
                self.stored = not self.store._claim(self.conn, self.key, data)
            else:
                row = {"key": self.key, "seq": self.seq, "data": data}
                self.conn.execute(insert(value_chunk), row)
        except LedgerflowError:
            raise
        except Exception as exc:
            raise self.store._failed("write", self.key, exc) from exc
        self.seq += 1

    def _commit(self) -> None:
        if self.pending or self.seq == 0:  # the last chunk, or the only one of an empty value
            self._insert(bytes(self.pending))
            self.pending = bytearray()
        try:
            if self.stored:
                self.transaction.rollback()
            else:
                self.transaction.commit()
        except LedgerflowError:
            raise
        except Exception as exc:
            raise self.store._failed("write", self.key, exc) from exc
        finally:
            self.conn.close()

    def _abort(self) -> None:
        try:
            self.transaction.rollback()
            self.conn.close()
        except Exception:  # a lost connection has rolled back already
            pass
