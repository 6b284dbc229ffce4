"""Large values in an object store or any other fsspec file system (``s3://bucket/prefix``).

Needs ``fsspec`` and the file system's package (``pip install 'ledgerflow[s3]'`` for S3).
Credentials come from where the file system's library finds them (the environment, its
configuration files, an instance role) or from ``values.store_options``; they are never
written to the ledger, logs or messages. One object per value, ``PREFIX/ab/cdef...``; an
object store publishes an upload only once it is complete, other file systems get the value
under a temporary name first, moved into place. Writing sends parts of a few megabytes and
reading fetches them one at a time, so a large value is never held twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import IO, Any

from ledgerflow.config.settings import hide_url_passwords
from ledgerflow.errors import LedgerflowError, MissingExtraError, ValueStoreError
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

#: Protocols whose uploads appear whole or not at all.
ATOMIC_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})
#: The package each common protocol needs, for the message when it is missing.
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
             "abfs": "adlfs", "abfss": "adlfs"}  # fmt: skip
#: Bytes sent per upload part (S3 wants at least 5 MiB per part but the last).
UPLOAD_PART = 2 * CHUNK_SIZE


class ObjectStore(ValueStore):
    """Values under ``url`` (``s3://bucket/prefix``), opened with fsspec and ``options``
    (passed to the file system: ``endpoint_url``, ``profile``, ``client_kwargs``, ...)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.options = dict(options or {})
        self._fs: Any = None
        self._root = ""

    def __repr__(self) -> str:
        return f"ObjectStore({self.describe()!r})"

    def describe(self) -> str:
        return hide_url_passwords(self.url)

    @property
    def protocol(self) -> str:
        return self.url.partition("://")[0].lower()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options, "_fs": None, "_root": ""}

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:
                import fsspec.core
            except ImportError as exc:
                raise MissingExtraError(f"values.store {self.describe()}", "s3", "fsspec") from exc
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url, **self.options)
            except ImportError as exc:
                package = _PACKAGES.get(self.protocol, f"the fsspec package for {self.protocol}")
                raise MissingExtraError(f"values.store {self.describe()}", "s3", package) from exc
            except (ValueError, TypeError) as exc:
                raise ValueStoreError(
                    f"cannot open the value store {self.describe()}: {_reason(exc)}",
                    hint="check values.store and values.store_options in ledgerflow.yml",
                ) from exc
            self._root = self._root.rstrip("/")
        return self._fs

    def path(self, key: str) -> str:
        key = check_key(key)
        fs = self.fs
        del fs
        return f"{self._root}/{key[:2]}/{key[2:]}"

    def write(self, key: str, parts: Iterable[Chunk]) -> str:
        target = self.path(key)
        fs = self.fs
        atomic = self.protocol in ATOMIC_PROTOCOLS
        where = target if atomic else f"{self._root}/.tmp/.tmp-{uuid.uuid4().hex}"
        try:
            if fs.exists(target):
                return key
            out = fs.open(where, "wb", block_size=UPLOAD_PART)
            try:
                for piece in guarded(parts):
                    out.write(piece)
            except BaseException:
                _discard(out)
                raise
            out.close()
            if not atomic:
                fs.mv(where, target)
        except PartsFailed as failed:
            raise failed.error from None
        except LedgerflowError:
            raise
        except Exception as exc:
            if not atomic:
                _forget(fs, where)
            raise ValueStoreError(
                f"cannot write value {key} to the value store {self.describe()}: {_reason(exc)}",
                hint="check that the store is reachable and writable with your credentials "
                "(environment, profile or values.store_options); the run's other work is kept",
            ) from exc
        return key

    def open(self, key: str) -> IO[bytes]:
        target = self.path(key)
        try:
            stream = self.fs.open(target, "rb", block_size=CHUNK_SIZE, cache_type="none")
            size = int(stream.size)
        except FileNotFoundError:
            raise self._missing(key) from None
        except LedgerflowError:
            raise
        except Exception as exc:
            raise self._unreadable(key, exc) from exc

        def chunk(seq: int) -> bytes | None:
            try:
                data: bytes = stream.read(CHUNK_SIZE)
            except Exception as exc:
                raise self._unreadable(key, exc) from exc
            return data or None

        return buffered(ChunkReader(size, chunk, close=stream.close))

    def exists(self, key: str) -> bool:
        target = self.path(key)
        try:
            return bool(self.fs.exists(target))
        except LedgerflowError:
            raise
        except Exception as exc:
            raise self._unreadable(key, exc) from exc

    def delete(self, key: str) -> None:
        target = self.path(key)
        try:
            self.fs.rm(target)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise ValueStoreError(
                f"cannot delete value {key} from the value store {self.describe()}: {_reason(exc)}",
                hint="check that your credentials may delete objects there",
            ) from exc

    def _unreadable(self, key: str, exc: BaseException) -> ValueStoreError:
        return ValueStoreError(
            f"cannot read value {key} from the value store {self.describe()}: {_reason(exc)}",
            hint="check that the store is reachable and readable with your credentials "
            "(environment, profile or values.store_options)",
        )


def _reason(exc: BaseException) -> str:
    """One short line about ``exc``, without any password a URL in it may carry."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return hide_url_passwords(text)[:300]


def _discard(out: Any) -> None:
    """Abandon an upload: nothing of it is published."""
    try:
        out.discard()
        out.closed = True
    except Exception:  # an upload that cannot be aborted expires on the server's side
        pass


def _forget(fs: Any, path: str) -> None:
    try:
        fs.rm(path)
    except Exception:  # a partial upload that cannot be removed is harmless: never read
        pass
