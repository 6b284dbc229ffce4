"""Digests of files on disk: by content, or fast by (resolved path, size, mtime)."""

from __future__ import annotations

import os
from hashlib import blake2b
from pathlib import Path
from typing import Literal

from ledgerflow.errors import NotFoundError, UsageError
from ledgerflow.hashing.digest import DIGEST_SIZE, hash_bytes

FileHashMode = Literal["content", "fast"]
CHUNK_SIZE = 1 << 20


def file_digest(path: str | os.PathLike[str], mode: FileHashMode = "content") -> str:
    """Hex digest of a file.

    ``content`` hashes the bytes (streamed in 1 MiB chunks; equal to ``hash_bytes`` of the
    whole content); ``fast`` hashes the resolved path, size and modification time, so it
    changes when the file is touched or moved even if the bytes are the same.
    """
    if mode == "content":
        return _content_digest(Path(path))
    if mode == "fast":
        resolved = Path(path).resolve()
        st = _stat(resolved)
        return hash_bytes(b"fast\0%s\0%d\0%d" % (os.fsencode(resolved), st.st_size, st.st_mtime_ns))
    raise UsageError(f"unknown file hash mode {mode!r}", hint="use 'content' or 'fast'")


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise _missing(path) from None


def _missing(path: Path) -> NotFoundError:
    return NotFoundError(
        f"file not found: {path}",
        hint="check the path (relative paths are resolved from the project directory)",
    )


def _content_digest(path: Path) -> str:
    h = blake2b(digest_size=DIGEST_SIZE)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buffer):
                h.update(view[:n])
    except FileNotFoundError:
        raise _missing(path) from None
    except IsADirectoryError:
        raise UsageError(
            f"cannot hash {path}: it is a directory", hint="pass File values for regular files"
        ) from None
    return h.hexdigest()
