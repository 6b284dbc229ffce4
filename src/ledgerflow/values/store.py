"""Value stores: where values too large for the ledger's inline column are kept, by hash.

Every store writes a value from a sequence of buffers (:meth:`ValueStore.write`, so an
encoder never has to join them into one copy) and reads it back as a stream
(:meth:`ValueStore.open`), and every write is atomic: a reader sees a whole value or none.
"""

from __future__ import annotations

import io
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, cast

from ledgerflow.errors import NotFoundError, UsageError, ValueStoreError

_KEY = re.compile(r"[0-9a-f]{3,128}")
#: A partial write untouched for this long (seconds) belongs to a writer that died.
PARTIAL_MAX_AGE = 3600.0
_PARTIAL_PREFIX = ".tmp-"
#: Bytes a store moves at a time: a chunk row, an upload part, a read.
CHUNK_SIZE = 4 * 1024 * 1024
#: What a value is written from: bytes or any object exposing a contiguous buffer.
Chunk = bytes | bytearray | memoryview


def check_key(key: str) -> str:
    """``key`` if it is a lowercase hex digest (so it can never name a path outside a store)."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise UsageError(
            f"invalid value key {key!r}",
            hint="keys are lowercase hex digests, e.g. hash_value(...)",
        )
    return key


class Upload(ABC):
    """One value being written (from :meth:`ValueStore.writer`): ``write`` its bytes in any
    number of pieces; it is published when the ``with`` block ends, and forgotten (nothing
    of it visible) when the block raises. ``stored`` is true when the key held a value
    already: the pieces are then dropped and the first value stays."""

    stored = False

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: Chunk) -> int:
        """Send ``data`` (any contiguous buffer; not copied when it is large)."""
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        n = len(view)
        self.size += n
        if not self.stored:
            for start in range(0, n, CHUNK_SIZE):
                self._send(view[start : start + CHUNK_SIZE])
        return n

    @abstractmethod
    def _send(self, piece: memoryview) -> None:
        """Pass on at most CHUNK_SIZE bytes."""

    @abstractmethod
    def _commit(self) -> None:
        """Publish the value."""

    @abstractmethod
    def _abort(self) -> None:
        """Forget everything sent (never raises)."""

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is not None:
            self._abort()
            return
        try:
            self._commit()
        except BaseException:
            self._abort()
            raise


class ValueStore(ABC):
    """Content-addressed blob storage. Writing is idempotent: the same key is stored once."""

    def put(self, hash: str, data: Chunk) -> str:
        """Store ``data`` under ``hash`` and return the key to get it back."""
        return self.write(hash, (data,))

    def write(self, key: str, parts: Iterable[Chunk]) -> str:
        """Store the concatenation of ``parts`` under ``key`` (atomically; a key already
        stored keeps its first bytes) and return the key. An error of ``parts`` itself
        leaves nothing stored and is raised as it is."""
        with self.writer(key) as upload:
            for part in parts:
                upload.write(part)
        return key

    @abstractmethod
    def writer(self, key: str) -> Upload:
        """An :class:`Upload` of the value ``key``, to use in a ``with`` block (an encoder
        writes into it as into a file)."""

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """The bytes stored under ``key`` as a stream; NotFoundError when there are none."""

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``, read into one buffer; NotFoundError when none."""
        with self.open(key) as stream:
            return read_all(stream)

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` holds bytes."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Forget ``key``; deleting a missing key does nothing."""

    def remove_partial(
        self,
        older_than: float = PARTIAL_MAX_AGE,
        *,
        everywhere: bool = False,
        dry_run: bool = False,
    ) -> int:
        """Delete partial writes left by a writer that was killed, untouched for
        ``older_than`` seconds; returns how many (``dry_run`` only counts them).
        ``everywhere`` also searches where older versions left them (slower).
        Stores that never leave partial writes have nothing to remove."""
        return 0

    def close(self) -> None:
        """Release connections the store holds (it opens them again when used)."""

    def describe(self) -> str:
        """Where the values are, for messages (never with a password)."""
        return repr(self)

    def _missing(self, key: str) -> NotFoundError:
        return NotFoundError(
            f"value {key} is not in the value store {self.describe()}",
            hint="the value store was pruned or moved; rerun the task that made it",
        )


def stream_size(stream: IO[bytes]) -> int | None:
    """The size of a stored value's stream (a store's stream or a file), when known."""
    size = getattr(stream, "size", None)
    if size is not None:
        return int(size)
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def read_all(stream: IO[bytes]) -> bytes:
    """Everything left in ``stream``, read into one ``bytes`` when its size is known (a
    stream with a ``size`` attribute, or a file): no second copy is made."""
    size = stream_size(stream)
    if size is None:
        return stream.read()
    data = stream.read(max(size - stream.tell(), 0))
    rest = stream.read()  # a value that grew meanwhile is still read whole
    return data + rest if rest else data


class ChunkReader(io.RawIOBase):
    """A readable raw stream over a value's chunks (a callable giving chunk ``i`` or None
    past the last), of known total ``size``; wrap it in :class:`io.BufferedReader`."""

    def __init__(
        self,
        size: int,
        chunk: Callable[[int], bytes | None],
        close: Callable[[], None] | None = None,
    ) -> None:
        self.size = size
        self._chunk = chunk
        self._on_close = close
        self._index = 0
        self._current = memoryview(b"")
        self._position = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if not self._current:
            data = self._chunk(self._index)
            if data is None:
                return 0
            self._index += 1
            self._current = memoryview(data)
        n = min(len(target), len(self._current))
        target[:n] = self._current[:n]
        self._current = self._current[n:]
        self._position += n
        return n

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close()
        super().close()


def buffered(raw: ChunkReader) -> IO[bytes]:
    """``raw`` behind a read buffer, keeping its ``size`` for :func:`read_all`."""
    return cast(IO[bytes], ValueStream(io.BufferedReader(raw, buffer_size=CHUNK_SIZE), raw.size))


class ValueStream(io.BufferedIOBase):
    """A value's bytes read from a store, a chunk at a time, of known ``size``.

    A buffered reader in all but its type: readers that would take an
    :class:`io.BufferedReader` for a file on disk (numpy's ``fromfile``) read it as a
    stream instead."""

    def __init__(self, inner: io.BufferedReader, size: int) -> None:
        super().__init__()
        self._inner = inner
        self.size = size

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._inner.read(size)

    def read1(self, size: int = -1) -> bytes:
        return self._inner.read1(size)

    def readinto(self, buffer: Any) -> int:
        return self._inner.readinto(buffer)

    def readinto1(self, buffer: Any) -> int:
        return self._inner.readinto1(buffer)

    def peek(self, size: int = 0) -> bytes:
        return self._inner.peek(size)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


class MemoryStore(ValueStore):
    """A store in a dict, for tests and throwaway runs."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._blobs)} values)"

    def writer(self, key: str) -> Upload:
        return _MemoryUpload(self._blobs, check_key(key))

    def open(self, key: str) -> IO[bytes]:
        try:
            return io.BytesIO(self._blobs[check_key(key)])
        except KeyError:
            raise self._missing(key) from None

    def exists(self, key: str) -> bool:
        return check_key(key) in self._blobs

    def delete(self, key: str) -> None:
        self._blobs.pop(check_key(key), None)


class DirectoryStore(ValueStore):
    """One file per value under ``root/ab/cdef...``, written atomically: to a temporary file
    ``root/.tmp/.tmp-*`` first, then renamed into place.

    Safe for concurrent writers, threads and processes: a reader sees a whole file or none.
    With ``durable=True`` each file is fsynced before it is renamed into place. A writer
    killed mid-write leaves its temporary file behind; :meth:`remove_partial` (called when a
    run starts, and by ``ledgerflow prune``) deletes those untouched for an hour.
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.root = Path(root)
        self.durable = durable

    def __repr__(self) -> str:
        return f"DirectoryStore({os.fspath(self.root)!r})"

    def describe(self) -> str:
        return os.fspath(self.root)

    def path(self, key: str) -> Path:
        key = check_key(key)
        return self.root / key[:2] / key[2:]

    def writer(self, key: str) -> Upload:
        return _FileUpload(self, self.path(key))

    def open(self, key: str) -> IO[bytes]:
        path = self.path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            if not self.root.is_dir():
                raise NotFoundError(
                    f"value {key} is not in the value store {self.describe()}: the folder "
                    "does not exist",
                    hint="mount the shared folder, or set values.store in ledgerflow.yml to "
                    "where the values are",
                ) from None
            raise self._missing(key) from None
        except OSError as exc:
            raise ValueStoreError(
                f"cannot read value {key} from the value store {self.describe()}: "
                f"{exc.strerror or type(exc).__name__}",
                hint="check that the folder is mounted and readable by you",
            ) from exc

    def _unwritable(self, exc: OSError) -> ValueStoreError:
        return ValueStoreError(
            f"cannot write to the value store {self.describe()}: "
            f"{exc.strerror or type(exc).__name__}",
            hint="make the folder writable by you (a team's shared folder: group-writable), "
            "or point values.store in ledgerflow.yml elsewhere",
        )

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_partial(
        self,
        older_than: float = PARTIAL_MAX_AGE,
        *,
        everywhere: bool = False,
        dry_run: bool = False,
    ) -> int:
        folders = [self.root / ".tmp"]
        if everywhere:  # earlier versions wrote them beside the values: root/ab/.tmp-*
            folders += [p for p in _entries(self.root) if p.is_dir() and len(p.name) == 2]
        cutoff = time.time() - older_than
        removed = 0
        for folder in folders:
            for path in _entries(folder):
                if not path.name.startswith(_PARTIAL_PREFIX):
                    continue
                try:
                    if path.stat().st_mtime >= cutoff:
                        continue  # recent: its writer may still be at work
                    if not dry_run:
                        path.unlink()
                except OSError:  # its writer finished, another cleaner got there first, or
                    continue  # the store is read-only: a partial write is harmless anyway
                removed += 1
        return removed


def _entries(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as found:
            return [Path(entry.path) for entry in found]
    except OSError:  # missing or unreadable: nothing to clean there
        return []


class _MemoryUpload(Upload):
    def __init__(self, blobs: dict[str, bytes], key: str) -> None:
        super().__init__()
        self.blobs, self.key = blobs, key
        self.stored = key in blobs
        self.buffer = io.BytesIO()

    def _send(self, piece: memoryview) -> None:
        self.buffer.write(piece)

    def _commit(self) -> None:
        if not self.stored:
            self.blobs.setdefault(self.key, self.buffer.getvalue())

    def _abort(self) -> None:
        self.buffer = io.BytesIO()


def _create_partial(folder: Path) -> tuple[int, str]:
    """A new file in ``folder`` open for writing, with the permissions the process's umask
    gives (``tempfile.mkstemp`` would make it 0600: in a folder shared by a group, the other
    members could not read the value it becomes)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        path = folder / f"{_PARTIAL_PREFIX}{os.urandom(8).hex()}"
        try:
            return os.open(path, flags, 0o666), str(path)
        except FileExistsError:
            continue


class _FileUpload(Upload):
    """Into ``root/.tmp/.tmp-*``, renamed to the value's path when complete."""

    def __init__(self, store: DirectoryStore, target: Path) -> None:
        super().__init__()
        self.store, self.target = store, target
        self.tmp: str | None = None
        try:
            if target.exists():
                self.stored = True
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = store.root / ".tmp"
            partial.mkdir(exist_ok=True)
            fd, self.tmp = _create_partial(partial)
            self.out = os.fdopen(fd, "wb")
        except OSError as exc:
            raise store._unwritable(exc) from exc

    def _send(self, piece: memoryview) -> None:
        try:
            self.out.write(piece)
        except OSError as exc:
            raise self.store._unwritable(exc) from exc

    def _commit(self) -> None:
        if self.stored or self.tmp is None:
            return
        try:
            if self.store.durable:
                self.out.flush()
                os.fsync(self.out.fileno())
            self.out.close()
            os.replace(self.tmp, self.target)
        except OSError as exc:
            raise self.store._unwritable(exc) from exc
        self.tmp = None

    def _abort(self) -> None:
        if self.tmp is None:
            return
        try:
            self.out.close()
        except OSError:
            pass
        Path(self.tmp).unlink(missing_ok=True)
        self.tmp = None
