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
from typing import IO, Any

from ledgerflow.config.settings import hide_url_passwords
from ledgerflow.errors import LedgerflowError, MissingExtraError, ValueStoreError
from ledgerflow.values.store import (
    CHUNK_SIZE,
    ChunkReader,
    Upload,
    ValueStore,
    buffered,
    check_key,
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

    def writer(self, key: str) -> Upload:
        return _ObjectUpload(self, self.path(key))

    def _unwritable(self, target: str, exc: BaseException) -> ValueStoreError:
        key = target.rsplit("/", 2)
        return ValueStoreError(
            f"cannot write value {key[-2] + key[-1]} to the value store {self.describe()}: "
            f"{_reason(exc)}",
            hint="check that the store is reachable and writable with your credentials "
            "(environment, profile or values.store_options); the run's other work is kept",
        )

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


class _ObjectUpload(Upload):
    """One object, uploaded in parts; published by the store when the upload completes
    (or, on a file system without atomic uploads, moved into place from a temporary name)."""

    def __init__(self, store: ObjectStore, target: str) -> None:
        super().__init__()
        self.store, self.target = store, target
        self.atomic = store.protocol in ATOMIC_PROTOCOLS
        root = target.rsplit("/", 2)[0]
        self.where = target if self.atomic else f"{root}/.tmp/.tmp-{uuid.uuid4().hex}"
        self.out: Any = None
        try:
            fs = store.fs
            self.stored = bool(fs.exists(target))
            if not self.stored:
                self.out = fs.open(self.where, "wb", block_size=UPLOAD_PART)
        except LedgerflowError:
            raise
        except Exception as exc:
            raise store._unwritable(target, exc) from exc

    def _send(self, piece: memoryview) -> None:
        try:
            self.out.write(piece)
        except Exception as exc:
            raise self.store._unwritable(self.target, exc) from exc

    def _commit(self) -> None:
        if self.out is None:
            return
        try:
            self.out.close()
            self.out = None
            if not self.atomic:
                self.store.fs.mv(self.where, self.target)
        except Exception as exc:
            raise self.store._unwritable(self.target, exc) from exc

    def _abort(self) -> None:
        if self.out is not None:
            _discard(self.out)
            self.out = None
        if not self.atomic:
            _forget(self.store.fs, self.where)


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
