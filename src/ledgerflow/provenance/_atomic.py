"""Export files appear whole or not at all: written to a temporary file in the target's own
directory, then renamed over the target (a failure removes the temporary file)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ledgerflow.errors import UsageError

__all__ = ["Target", "atomic_path", "atomic_stream", "check_target"]

Target = str | os.PathLike[str] | IO[Any]


def check_target(target: str | os.PathLike[str]) -> Path:
    """The target as a path, refused at once (one line) when it cannot be written."""
    path = Path(target)
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory", hint="give a file name with -o")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: no directory {parent}",
                         hint="create the directory first")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied",
                         hint="choose a file in a directory you may write to")
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``target``; renamed to ``target`` when the block succeeds."""
    path = check_target(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}",
                         hint="choose a file in a directory you may write to") from None
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_stream(target: Target, *, binary: bool = False) -> Iterator[IO[Any]]:
    """A stream to write: ``target`` itself when it is one, stdout for ``-``, else a
    temporary file renamed to the path ``target`` when the block succeeds."""
    if hasattr(target, "write"):
        yield target  # type: ignore[misc]
        return
    if os.fspath(target) == "-":  # type: ignore[arg-type]
        yield sys.stdout.buffer if binary else sys.stdout
        return
    with atomic_path(target) as temporary:  # type: ignore[arg-type]
        if binary:
            with temporary.open("wb") as stream:
                yield stream
        else:
            with temporary.open("w", encoding="utf-8", newline="\n") as stream:
                yield stream
