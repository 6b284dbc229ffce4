"""file_digest: content digests streamed in chunks, and the fast (path, size, mtime) mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledgerflow.errors import NotFoundError, UsageError
from ledgerflow.hashing import file_digest, hash_bytes
from ledgerflow.hashing.files import CHUNK_SIZE


def test_content_digest_equals_hash_of_the_bytes_across_chunks(tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 12345)
    target = tmp_path / "big.bin"
    target.write_bytes(data)
    assert file_digest(target) == hash_bytes(data)
    assert file_digest(str(target), "content") == hash_bytes(data)


def test_content_digest_ignores_name_and_mtime(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("ACGT\n")
    b.write_text("ACGT\n")
    os.utime(b, ns=(1, 1))
    assert file_digest(a) == file_digest(b)
    b.write_text("ACGA\n")
    assert file_digest(a) != file_digest(b)


def test_fast_digest_follows_size_mtime_and_location(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("ACGT\n")
    os.utime(a, ns=(10**18, 10**18))
    first = file_digest(a, "fast")
    assert file_digest(a, "fast") == first
    os.utime(a, ns=(10**18, 10**18 + 1))
    touched = file_digest(a, "fast")
    assert touched != first
    copy = tmp_path / "copy.txt"
    copy.write_bytes(a.read_bytes())
    os.utime(copy, ns=(10**18, 10**18 + 1))
    assert file_digest(copy, "fast") != touched
    assert file_digest(copy) == file_digest(a)


def test_fast_digest_resolves_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "x.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert file_digest("x.txt", "fast") == file_digest(tmp_path / "x.txt", "fast")


def test_missing_file_and_directory_are_clear_errors(tmp_path: Path) -> None:
    for mode in ("content", "fast"):
        with pytest.raises(NotFoundError, match="nope.txt"):
            file_digest(tmp_path / "nope.txt", mode)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="directory"):
        file_digest(tmp_path)
    with pytest.raises(UsageError, match="mode"):
        file_digest(tmp_path, "slow")  # type: ignore[arg-type]
