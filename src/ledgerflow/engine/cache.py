"""Batched cache lookups: one query for every call that became ready together.

The cache key is ``(task hash, arguments hash)``. A key may have several entries, one per
result recorded for it (a ``--rerun``, a call computed again because its entry could not be
used): the newest consistent one is used. Each query reads every entry of one task for up
to :data:`CHUNK` argument hashes, newest first, joined with their value rows and the
``lf_call`` row they name, through the raw driver. An entry is consistent when its call
hash is ``combine(task_hash, args_hash, value_hash)`` and that call row says the same; an
inconsistent one (a row changed behind ledgerflow's back) comes with a ``problem`` and is
never used.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy.exc import DBAPIError

from ledgerflow.db.chunks import chunks
from ledgerflow.errors import DatabaseError
from ledgerflow.hashing import combine

if TYPE_CHECKING:
    from sqlalchemy import Engine

CHUNK = 400  # keys per IN list here: each statement shape is prepared once per size
#: After this many lookups of one task in a run, its cache entries are read once and kept.
PREFETCH_AFTER = 32
#: A task with more cache entries than this is always looked up key by key.
PREFETCH_MAX = 100_000
#: JSON values up to this size come with the prefetched entries (checked without a query).
PREFETCH_BYTES = 256
ENTRY_CHANGED = "its cache entry does not match the call it claims (changed outside ledgerflow)"


def entry_problem(
    task_hash: str, args_hash: str, call_hash: str, value_hash: str, call: tuple[Any, ...]
) -> str | None:
    """Why a cache entry cannot be used (None when it is consistent). ``call`` is the
    ``(task_hash, args_hash, value_hash)`` of the ``lf_call`` row named by ``call_hash``."""
    if call_hash != combine(task_hash, args_hash, value_hash):
        return ENTRY_CHANGED
    if tuple(call) != (task_hash, args_hash, value_hash):
        return "its call record is missing or disagrees with it (changed outside ledgerflow)"
    return None


class CacheHit(NamedTuple):
    task_hash: str
    args_hash: str
    call_hash: str
    value_hash: str
    run_id: str | None
    format: str
    inline: bytes | None
    store_key: str | None
    signature: str | None
    writer: str | None
    #: why the entry cannot be used (None when consistent with its call)
    problem: str | None = None


def _newest(task_hash: str, rows: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """Per arguments hash, the newest consistent version among ``rows`` (newest first), or
    the newest one when none is consistent (it then comes with its problem)."""
    entries: dict[str, tuple[Any, ...]] = {}
    usable: set[str] = set()
    for row in rows:
        args_hash = row[0]
        if args_hash in usable:
            continue
        if entry_problem(task_hash, args_hash, row[1], row[2], row[8:]) is None:
            entries[args_hash] = row[1:]
            usable.add(args_hash)
        else:
            entries.setdefault(args_hash, row[1:])
    return entries


class StoredValue(NamedTuple):
    format: str
    inline: bytes | None
    store_key: str | None
    signature: str | None
    writer: str | None


class CacheReader:
    """Looks up cache entries for many keys at once."""

    def __init__(self, engine: Engine, *, defer_values: bool = False) -> None:
        self.engine = engine
        self.defer_values = defer_values  # small JSON values come with prefetched entries
        self._raw: Any = None
        self.queries = 0
        paramstyle = engine.dialect.paramstyle
        self._mark = "?" if paramstyle == "qmark" else "%s"
        self._sqlite = engine.dialect.name == "sqlite"
        self._asked: dict[str, int] = {}
        self._entries: dict[str, dict[str, tuple[Any, ...]] | None] = {}

    def _connection(self) -> Any:
        if self._raw is None:
            try:
                self._raw = self.engine.raw_connection()
            except DBAPIError as exc:
                raise DatabaseError(f"cannot open the ledger: {exc.orig}") from None
            if not self._sqlite:
                self._raw.driver_connection.autocommit = True  # reads only: one round trip each
        return self._raw

    def _sql(self, count: int) -> str:
        marks = ", ".join([self._mark] * count)
        return (
            "SELECT c.task_hash, c.args_hash, c.call_hash, c.value_hash, c.run_id, v.format, "
            "v.inline, v.store_key, v.signature, v.writer, k.task_hash, k.args_hash, "
            "k.value_hash FROM lf_cache_entry c "
            "JOIN lf_value v ON v.hash = c.value_hash "
            "LEFT JOIN lf_call k ON k.hash = c.call_hash "
            f"WHERE c.task_hash = {self._mark} AND c.args_hash IN ({marks}) "
            "ORDER BY c.created_at DESC"
        )

    def lookup(
        self, keys: Iterable[tuple[str, str]], *, fresh: bool = False
    ) -> dict[tuple[str, str], CacheHit]:
        """The cache entries among ``keys`` (task hash, args hash); ``fresh``: read from the
        database even for a task whose entries were read once (another run wrote them)."""
        by_task: dict[str, list[str]] = defaultdict(list)
        for task_hash, args_hash in keys:
            by_task[task_hash].append(args_hash)
        found: dict[tuple[str, str], CacheHit] = {}
        if not by_task:
            return found
        raw = self._connection()
        cursor = raw.cursor()
        try:
            for task_hash, args in by_task.items():
                if not fresh:
                    args = self._worth_asking(cursor, task_hash, args, found)
                for chunk in chunks(args, CHUNK):
                    cursor.execute(self._sql(len(chunk)), [task_hash, *chunk])
                    self.queries += 1
                    for row in cursor.fetchall():  # newest first
                        task, arg, call, value = row[:4]
                        seen = found.get((task, arg))
                        if seen is not None and seen.problem is None:
                            continue  # a newer valid version was found
                        problem = entry_problem(task, arg, call, value, row[10:])
                        if seen is not None and problem is not None:
                            continue  # the newest unusable version stands for them
                        found[(task, arg)] = CacheHit(
                            task, arg, call, value, row[4], row[5], row[6], row[7], row[8],
                            row[9], problem,
                        )  # fmt: skip
        except DBAPIError as exc:
            raise DatabaseError(f"reading the cache failed: {exc.orig}") from None
        except Exception as exc:
            if type(exc).__module__.startswith(("sqlite3", "psycopg")):
                raise DatabaseError(f"reading the cache failed: {exc}") from None
            raise
        finally:
            cursor.close()
        return found

    def _worth_asking(
        self, cursor: Any, task_hash: str, args: list[str], found: dict[tuple[str, str], CacheHit]
    ) -> list[str]:
        """The keys still to read. A task looked up many times (a chain, say) has its
        entries read once (with the bytes of small JSON values only): misses then cost no
        query, and hits on small JSON values need none either. Entries written by other runs
        after that are not seen: those calls are computed again, which is safe."""
        if task_hash not in self._entries:
            asked = self._asked.get(task_hash, 0) + len(args)
            self._asked[task_hash] = asked
            if asked <= PREFETCH_AFTER:
                return args
            cursor.execute(
                "SELECT c.args_hash, c.call_hash, c.value_hash, c.run_id, v.format, "
                f"CASE WHEN v.format = 'json' AND v.size <= {PREFETCH_BYTES} THEN v.inline END, "
                "v.signature, v.writer, k.task_hash, k.args_hash, k.value_hash "
                "FROM lf_cache_entry c JOIN lf_value v ON v.hash = c.value_hash "
                "LEFT JOIN lf_call k ON k.hash = c.call_hash "
                f"WHERE c.task_hash = {self._mark} ORDER BY c.created_at DESC "
                f"LIMIT {PREFETCH_MAX + 1}",
                [task_hash],
            )
            rows = cursor.fetchall()
            self.queries += 1
            self._entries[task_hash] = None if len(rows) > PREFETCH_MAX else _newest(task_hash, rows)
        entries = self._entries[task_hash]
        if entries is None:
            return args
        rest = []
        for args_hash in args:
            entry = entries.get(args_hash)
            if entry is None:
                continue
            call_hash, value_hash, run_id, fmt, inline, signature, writer = entry[:7]
            problem = entry_problem(task_hash, args_hash, call_hash, value_hash, entry[7:])
            if problem is not None or (inline is not None and self.defer_values):
                found[(task_hash, args_hash)] = CacheHit(
                    task_hash, args_hash, call_hash, value_hash, run_id, fmt, inline, None,
                    signature, writer, problem,
                )
            else:
                rest.append(args_hash)  # its bytes are read (and checked) now
        return rest

    def values(self, hashes: Iterable[str]) -> dict[str, StoredValue]:
        """The stored form of values by hash."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, StoredValue] = {}
        if not wanted:
            return found
        cursor = self._connection().cursor()
        try:
            for chunk in chunks(wanted, CHUNK):
                marks = ", ".join([self._mark] * len(chunk))
                cursor.execute(
                    "SELECT hash, format, inline, store_key, signature, writer FROM lf_value "
                    f"WHERE hash IN ({marks})",
                    chunk,
                )
                self.queries += 1
                for row in cursor.fetchall():
                    found[row[0]] = StoredValue(*row[1:])
        finally:
            cursor.close()
        return found

    def value_stored(self, value_hash: str) -> bool:
        """Whether ``lf_value`` holds ``value_hash``."""
        raw = self._connection()
        cursor = raw.cursor()
        try:
            cursor.execute(f"SELECT 1 FROM lf_value WHERE hash = {self._mark}", [value_hash])
            return cursor.fetchone() is not None
        finally:
            cursor.close()

    def close(self) -> None:
        if self._raw is not None:
            try:
                if not self._sqlite:
                    self._raw.driver_connection.autocommit = False
                self._raw.close()
            finally:
                self._raw = None
