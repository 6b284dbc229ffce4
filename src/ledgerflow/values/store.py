"""Value stores: where values too large for the ledger's inline column are kept, by hash."""

from __future__ import annotations

import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from ledgerflow.errors import NotFoundError, UsageError

_KEY = re.compile(r"[0-9a-f]{3,128}")


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
    """One file per value under ``root/ab/cdef...``, written atomically (temp file + rename).

    Safe for concurrent writers, threads and processes: a reader sees a whole file or none.
    With ``durable=True`` each file is fsynced before it is renamed into place.
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
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
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
