"""Values in a run: hashing (each distinct object once), recording, and loading cached ones.

A value is recorded as one ``lf_value`` row (inline bytes when small, the value store when
large) with the digest of its bytes. A container (list, tuple, dict, dataclass) also
records its elements and a ``lf_value_edge`` per element; a ``File`` also records a
``lf_file`` row. A stored value is used only when it checks out (see
:mod:`ledgerflow.values.integrity`): plain data must hash to its address, a pickle must
come from a trusted writer with its bytes intact.

A worker of a distributed executor may record a large result itself (:func:`store_result`):
it writes the bytes to the value store and sends back a :class:`StoredResult`, the rows the
run's process records instead of the value; such a result is read back (its digest
checked) only where the run's process needs the value itself (:class:`LazyValue`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ledgerflow.engine.expr import ATOMS
from ledgerflow.engine.node import StoredResult
from ledgerflow.engine.results import Deferred
from ledgerflow.errors import (
    IntegrityError,
    LedgerflowError,
    SerializationError,
    UntrustedValueError,
    ValueStoreError,
)
from ledgerflow.hashing import hash_value
from ledgerflow.values import (
    SAFE_FORMATS,
    File,
    Trust,
    content_problem,
    encode,
    load_stored,
    open_store,
)
from ledgerflow.values import digest as bytes_digest
from ledgerflow.values.streaming import NOT_STREAMED, read_streamed, write_streamed

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledgerflow.config.settings import Settings
    from ledgerflow.engine.cache import CacheHit, StoredValue
    from ledgerflow.ledger.recorder import Recorder
    from ledgerflow.values import ValueStore

#: Elements of one container recorded as value edges; larger containers record the first ones.
MAX_EDGES = 10_000
_FILE_MARK = b"ledgerflow.values"
#: The trust of bytes written by this run itself (a worker's stored result).
_OWN_NAME = "ledgerflow: this run"
_OWN = Trust(frozenset({_OWN_NAME}))
#: Objects whose hash a run remembers (by identity) before it starts over.
MEMO_SIZE = 50_000


class Values:
    """Hashing, encoding and storing the values of one run."""

    def __init__(
        self,
        settings: Settings,
        recorder: Recorder | None = None,
        stored: Callable[[str], bool] | None = None,
        trust: Trust | None = None,
        engine: Engine | None = None,
        store: ValueStore | None = None,
    ) -> None:
        self.settings = settings
        self._engine = engine  # the ledger's, for a store kept in the ledger database
        self.recorder = recorder
        self.stored = stored  # asks the ledger whether a value is there already
        self.inline_max = settings.values.inline_max_bytes
        self._store: ValueStore | None = store
        self._trust = trust  # read from the settings on first use when not given
        self._memo: dict[int, tuple[Any, str]] = {}
        self._corrupt: set[str] = set()  # stored values whose bytes failed: rewrite them
        #: one line per stored value or cache entry that could not be used, by value hash
        self.notes: dict[str, str] = {}

    @property
    def trust(self) -> Trust:
        if self._trust is None:
            self._trust = Trust.of(self.settings)
        return self._trust

    @property
    def store(self) -> ValueStore:
        if self._store is None:
            self._store = open_store(self.settings, engine=self._engine)
        return self._store

    # -- hashing -----------------------------------------------------------------------

    def hash(self, obj: Any) -> str:
        """Content hash of ``obj``; containers and other objects are hashed once per run."""
        if type(obj) in ATOMS:
            return hash_value(obj)
        if type(obj) is StoredResult:
            return obj.digest
        found = self._memo.get(id(obj))
        if found is not None and found[0] is obj:
            return found[1]
        digest = hash_value(obj)
        self.known(obj, digest)
        return digest

    def known(self, obj: Any, digest: str) -> None:
        """Remember that ``obj`` hashes to ``digest`` (a result whose hash is already known)."""
        if type(obj) in ATOMS or isinstance(obj, File):  # a File's content may change
            return
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()  # the memo keeps objects alive: bound it
        self._memo[id(obj)] = (obj, digest)

    # -- recording ---------------------------------------------------------------------

    def record(self, obj: Any, digest: str) -> None:
        """Buffer the rows of a value (and of its elements) unless already recorded."""
        recorder = self.recorder
        assert recorder is not None
        if digest in self._corrupt:
            self._corrupt.discard(digest)
            if type(obj) is StoredResult:  # its worker stored its bytes under its hash
                recorder.value_repair(obj.rows[0])
            else:
                try:
                    self.store.delete(digest)
                except ValueStoreError:  # a store in the ledger only grows for the user role
                    pass
                # its bytes go to the store, under its hash: a role that may not rewrite
                # the row (the user role on PostgreSQL) thus fills a row whose damaged
                # bytes an admin dropped (`cache verify --repair` points it at that key)
                recorder.value_repair(self._value_row(obj, digest, time.time(), to_store=True))
            recorder.value_known(digest)
        if recorder.has_value(digest):
            return
        if type(obj) is StoredResult:
            self._record_stored(obj)
            return
        if self.stored is not None and _large(obj) and self.stored(digest):
            recorder.value_known(digest)
            return
        now = time.time()
        stack = [(obj, digest)]
        while stack:
            item, item_hash = stack.pop()
            if recorder.has_value(item_hash):
                continue
            recorder.value(self._value_row(item, item_hash, now))
            if type(item) in ATOMS:
                continue
            if isinstance(item, File):
                recorder.file(_file_row(item, item_hash, now))
                continue
            edges = []
            for position, child in _elements(item):
                child_hash = self.hash(child)
                edges.append((item_hash, position, child_hash))
                if not recorder.has_value(child_hash):
                    stack.append((child, child_hash))
            if edges:
                recorder.value_edges(edges)

    def _record_stored(self, result: StoredResult) -> None:
        """Buffer the rows a worker made for its result, those the ledger lacks."""
        recorder = self.recorder
        assert recorder is not None
        new = set()
        for row in result.rows:
            if row[0] not in new and not recorder.has_value(row[0]):
                recorder.value(row)
                new.add(row[0])
        for file_row in result.files:
            if file_row[0] in new:
                recorder.file(file_row)
        edges = [edge for edge in result.edges if edge[0] in new]
        if edges:
            recorder.value_edges(edges)

    def load_stored(self, result: StoredResult) -> Any:
        """The value a worker of this run stored, read back from the value store (its
        bytes checked against their digest; the run's own pickles are trusted)."""
        row = result.rows[0]
        value, why = self._load(result.digest, row[2], row[5], row[6], row[7], None, own=True)
        if why is not None:
            raise IntegrityError(
                f"the result {result.digest} a worker stored cannot be used: {why}",
                hint="run again: the call is computed again",
            )
        self.known(value, result.digest)
        return value

    def _value_row(
        self, obj: Any, value_hash: str, now: float, *, to_store: bool = False
    ) -> tuple[Any, ...]:
        """The ``lf_value`` row of ``obj``, its bytes inline when small (``to_store``: in the
        value store whatever their size)."""
        streamed = write_streamed(obj, self.inline_max, lambda: self.store.writer(value_hash))
        if streamed is not None:  # a large array or bytes, encoded straight into the store
            return (
                value_hash, streamed.type_name[:255], streamed.format, streamed.preview[:255],
                streamed.size, None, value_hash, streamed.digest, now,
            )  # fmt: skip
        encoded = encode(obj, value_hash)
        data = encoded.data
        inline: bytes | None = data
        store_key = None
        if to_store or encoded.size > self.inline_max:
            store_key = self.store.put(value_hash, data)
            inline = None
        return (
            value_hash, encoded.type_name[:255], encoded.format, encoded.preview[:255],
            encoded.size, inline, store_key, bytes_digest(data), now,
        )  # fmt: skip

    # -- loading -----------------------------------------------------------------------

    def load(self, stored: StoredValue, value_hash: str) -> Any:
        """A stored value, checked (IntegrityError when it cannot be used)."""
        value, why = self._load(
            value_hash, stored.format, stored.inline, stored.store_key, stored.signature,
            stored.writer,
        )
        if why is not None:
            raise IntegrityError(
                f"the stored value {value_hash} cannot be used: {why}",
                hint="run again: the call that made it is computed again",
            )
        return value

    def check_hit(self, hit: CacheHit) -> tuple[bool, Any, str | None]:
        """``(ok, value, why_not)`` for a cache hit: a consistent entry whose value checks
        out (its bytes, its writer, its files). A hit that fails is noted in :attr:`notes`."""
        if hit.problem is not None:
            return self._refuse(hit.value_hash, hit.problem)
        value, why = self._load(
            hit.value_hash, hit.format, hit.inline, hit.store_key, hit.signature, hit.writer
        )
        if why is not None:
            return False, None, why
        self.known(value, hit.value_hash)
        return True, value, None

    def _load(
        self,
        value_hash: str,
        fmt: str,
        inline: bytes | None,
        store_key: str | None,
        signature: str | None,
        writer: str | None,
        *,
        own: bool = False,
    ) -> tuple[Any, str | None]:
        """``(value, None)``, or ``(None, why)`` when the stored value cannot be used.
        ``own``: bytes this run wrote (a worker's result), whatever ``cache.trust`` says."""
        trust = _OWN if own else self.trust
        try:
            data = b""
            value = NOT_STREAMED
            if inline is None:  # a large array or bytes: decoded as it is read, then checked
                value = read_streamed(self.store, store_key or "", fmt)
            if value is NOT_STREAMED:
                data = bytes(inline) if inline is not None else self.store.get(store_key or "")
                value = load_stored(fmt, data, signature, _OWN_NAME if own else writer, trust)
        except IntegrityError as exc:
            if not isinstance(exc, UntrustedValueError):
                self._corrupt.add(value_hash)
            return self._refuse(value_hash, exc.message)[1:]
        except LedgerflowError as exc:
            self._corrupt.add(value_hash)
            return self._refuse(value_hash, f"it cannot be loaded ({exc.message})")[1:]
        if fmt in SAFE_FORMATS or _FILE_MARK in data:
            why = content_problem(value, value_hash)
            if why is not None:
                if not why.startswith("file "):
                    self._corrupt.add(value_hash)
                    return self._refuse(value_hash, why)[1:]
                return None, why
        return value, None

    def _refuse(self, value_hash: str, why: str) -> tuple[bool, None, str]:
        """A stored result that is not used: noted once, computed again."""
        self.notes.setdefault(value_hash, why)
        return False, None, why


class _Rows:
    """What :meth:`Values.record` writes to, on a worker: the rows, kept to send back."""

    def __init__(self) -> None:
        self.values: list[tuple[Any, ...]] = []
        self.edges: list[tuple[str, str, str]] = []
        self.files: list[tuple[Any, ...]] = []
        self._known: set[str] = set()

    def has_value(self, digest: str) -> bool:
        return digest in self._known

    def value_known(self, digest: str) -> None:
        self._known.add(digest)

    def value(self, row: tuple[Any, ...]) -> None:
        self._known.add(row[0])
        self.values.append(row)

    def value_edges(self, edges: list[tuple[str, str, str]]) -> None:
        self.edges.extend(edges)

    def file(self, row: tuple[Any, ...]) -> None:
        self.files.append(row)


def store_result(value: Any, settings: Settings, store: ValueStore) -> StoredResult:
    """On a worker: hash, encode and store ``value`` (and its elements) as the run's
    process would, and return the rows to record instead of the value."""
    rows = _Rows()
    values = Values(settings, recorder=rows, store=store)  # type: ignore[arg-type]
    digest = values.hash(value)
    values.record(value, digest)
    return StoredResult(digest, tuple(rows.values), tuple(rows.edges), tuple(rows.files))


class LazyValue(Deferred):
    """A stored result not read yet: :meth:`load` reads it (once) from the value store."""

    __slots__ = ("_loaded", "_result", "_values")

    def __init__(self, values: Values, result: StoredResult) -> None:
        self._values: Values | None = values
        self._result = result
        self._loaded: Any = None

    @property
    def digest(self) -> str:
        return self._result.digest

    def load(self) -> Any:
        if self._values is not None:
            self._loaded = self._values.load_stored(self._result)
            self._values = None
        return self._loaded

    def preview(self, limit: int) -> str:
        if self._values is None:  # read already
            from ledgerflow.values import preview

            return preview(self._loaded, limit)
        text = self._result.preview
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def __repr__(self) -> str:
        return f"<stored result {self._result.digest[:12]}: {self._result.preview}>"


def _large(obj: Any) -> bool:
    """A container big enough that asking the ledger first beats re-recording it."""
    return isinstance(obj, (list, tuple, dict)) and len(obj) > 64


def _elements(obj: Any) -> list[tuple[str, Any]]:
    """(position, element) of a container, at most MAX_EDGES of them."""
    if isinstance(obj, (list, tuple)):
        return [(str(i), v) for i, v in zip(range(MAX_EDGES), obj)]
    if isinstance(obj, dict):
        return [(_position(k), v) for k, v in zip(range(MAX_EDGES), obj.items())][: MAX_EDGES]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    return []


def _position(key: Any) -> str:
    text = key if isinstance(key, str) else repr(key)
    return text[:255]


def _file_row(item: File, digest: str, now: float) -> tuple[Any, ...]:
    size: int | None = None
    mtime: float | None = None
    try:
        st = os.stat(item.path)
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        pass
    return (digest, item.as_posix(), item.hash, size, mtime, now)


def serialisation_error(task_name: str, exc: Exception) -> LedgerflowError:
    if isinstance(exc, ValueStoreError):  # the value is fine, its store is not: say how to fix
        return ValueStoreError(f"task {task_name}: its value was not stored: {exc.render()}")
    detail = exc.message if isinstance(exc, LedgerflowError) else f"{type(exc).__name__}: {exc}"
    return SerializationError(f"task {task_name} returned a value that cannot be stored: {detail}")
