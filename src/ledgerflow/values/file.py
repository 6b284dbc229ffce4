"""``File``: a value that stands for a file on disk and hashes by its content."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, ClassVar

from ledgerflow.hashing import FileHashMode, combine, file_digest, hash_bytes


class File:
    """A file a task reads or writes, recorded in the ledger by path and content.

    ``path`` is a ``str`` (``fastq.path.replace("fastq", "bam")`` works, as in redun), kept as
    given apart from pathlib's normalisation (``./a//b`` becomes ``a/b``); ``as_path()`` gives
    it as a ``pathlib.Path``. A relative path stays relative (tasks run with the project
    directory as working directory), so moving the whole project keeps its cache. Its identity
    in the ledger, ``__ledgerflow_hash__()``, combines the path (in POSIX form) with the
    digest of the content (or of size and mtime when ``File.hash_mode`` is ``"fast"``).
    Equality and ``hash()`` use the path only; pickling keeps the path only.
    """

    __slots__ = ("_digest", "path")

    hash_mode: ClassVar[FileHashMode] = "content"
    path: str
    _digest: tuple[int, int, str, str] | None

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(Path(path.path if isinstance(path, File) else path))
        self._digest = None

    def as_path(self) -> Path:
        """The path as a ``pathlib.Path`` (``file.as_path().stem``, ``.parent``, ``.suffix``)."""
        return Path(self.path)

    def as_posix(self) -> str:
        """The path with forward slashes: the form the ledger records and hashes."""
        return Path(self.path).as_posix()

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"File({self.as_posix()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, File):
            return self.path == other.path
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.path)

    def __reduce__(self) -> tuple[type[File], tuple[str]]:
        return (File, (self.path,))

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def stat_signature(self) -> tuple[int, int]:
        """``(size, mtime_ns)``: cheap evidence that the file has not changed."""
        st = os.stat(self.path)
        return st.st_size, st.st_mtime_ns

    @property
    def size(self) -> int:
        return os.stat(self.path).st_size

    @property
    def hash(self) -> str:
        """Digest of the file (mode ``File.hash_mode``), recomputed only when size or mtime change."""
        mode = self.hash_mode
        try:
            size, mtime_ns = self.stat_signature()
        except FileNotFoundError:
            return file_digest(self.path, mode)  # raises NotFoundError naming the path
        cached = self._digest
        if cached is not None and cached[:3] == (size, mtime_ns, mode):
            return cached[3]
        digest = file_digest(self.path, mode)
        self._digest = (size, mtime_ns, mode, digest)
        return digest

    def __ledgerflow_hash__(self) -> str:
        return combine(
            hash_bytes(self.as_posix().encode("utf-8", "surrogateescape")), self.hash
        )

    def read(self, encoding: str = "utf-8") -> str:
        return self.as_path().read_text(encoding=encoding)

    def read_bytes(self) -> bytes:
        return self.as_path().read_bytes()

    def write(self, data: str | bytes, encoding: str = "utf-8") -> File:
        """Write ``data`` (creating parent directories) and return this File."""
        path = self.as_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding=encoding)
        else:
            path.write_bytes(data)
        self._digest = None
        return self

    def open(self, mode: str = "r", **kwargs: Any) -> IO[Any]:
        """Open the file; writing modes create parent directories first."""
        if any(flag in mode for flag in "wax"):
            self.as_path().parent.mkdir(parents=True, exist_ok=True)
            self._digest = None
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        return open(self.path, mode, **kwargs)


File.__module__ = "ledgerflow.values"
