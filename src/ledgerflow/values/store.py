"""Value stores: where values too large for the ledger's inline column are kept, by hash."""

from __future__ import annotations

import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

from ledgerflow.errors import NotFoundError, UsageError

_KEY = re.compile(r"[0-9a-f]{3,128}")
#: A partial write untouched for this long (seconds) belongs to a writer that died.
PARTIAL_MAX_AGE = 3600.0
_PARTIAL_PREFIX = ".tmp-"


def check_key(key: str) -> str:
    """``key`` if it is a lowercase hex digest (so it can never name a path outside a store)."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise UsageError(
            f"invalid value key {key!r}",
            hint="keys are lowercase hex digests, e.g. hash_value(...)",
        )
    return key


class ValueStore(ABC):
    """Content-addressed blob storage. ``put`` is idempotent: the same hash is stored once."""

    @abstractmethod
    def put(self, hash: str, data: bytes) -> str:
        """Store ``data`` under ``hash`` and return the key to get it back."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; NotFoundError when there are none."""

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

    def _missing(self, key: str) -> NotFoundError:
        return NotFoundError(
            f"value {key} is not in {self!r}",
            hint="the value store was pruned or moved; rerun the task that made it",
        )


class MemoryStore(ValueStore):
    """A store in a dict, for tests and throwaway runs."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._blobs)} values)"

    def put(self, hash: str, data: bytes) -> str:
        self._blobs.setdefault(check_key(hash), bytes(data))
        return hash

    def get(self, key: str) -> bytes:
        try:
            return self._blobs[check_key(key)]
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

    def path(self, key: str) -> Path:
        key = check_key(key)
        return self.root / key[:2] / key[2:]

    def put(self, hash: str, data: bytes) -> str:
        target = self.path(hash)
        if target.exists():
            return hash
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = self.root / ".tmp"
        partial.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_PARTIAL_PREFIX, dir=partial)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return hash

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise self._missing(key) from None

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
