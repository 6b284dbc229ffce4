"""File: a path-plus-content value with a cached digest."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from ledgerflow.errors import NotFoundError
from ledgerflow.hashing import combine, file_digest, hash_bytes, hash_value
from ledgerflow.values import File


def test_write_read_and_basic_protocols(tmp_path: Path) -> None:
    f = File(tmp_path / "deep" / "dir" / "a.vcf")
    assert not f.exists()
    assert f.write("chr1\t1\n") is f
    assert f.exists() and f.read() == "chr1\t1\n" and f.read_bytes() == b"chr1\t1\n"
    assert f.size == 7
    assert os.fspath(f) == str(tmp_path / "deep" / "dir" / "a.vcf")
    with open(f) as fh:
        assert fh.read() == "chr1\t1\n"
    with f.open("a") as fh:
        fh.write("chr2\t5\n")
    assert f.read().count("\n") == 2
    assert f.write(b"\x00") is f and f.read_bytes() == b"\x00"


def test_repr_equality_and_hash_use_the_path(tmp_path: Path) -> None:
    assert repr(File("results/x.vcf")) == "File('results/x.vcf')"
    assert File("results/x.vcf") == File(Path("results") / "x.vcf")
    assert File("./results/x.vcf") == File("results/x.vcf")
    assert File("a") != File("b") and File("a") != "a"
    assert len({File("a"), File("a"), File("b")}) == 2
    assert File(File("a")).path == Path("a")


def test_pickle_keeps_only_the_path(tmp_path: Path) -> None:
    f = File(tmp_path / "a.txt").write("x")
    _ = f.hash
    data = pickle.dumps(f, protocol=5)
    assert b"ledgerflow.values" in data
    clone = pickle.loads(data)
    assert clone == f and clone._digest is None


def test_identity_combines_path_as_given_and_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    f = File("results/x.vcf").write("ACGT")
    assert f.__ledgerflow_hash__() == combine(
        hash_bytes(b"results/x.vcf"), file_digest("results/x.vcf")
    )
    assert hash_value(f) == f.__ledgerflow_hash__()
    assert hash_value(File("other.vcf").write("ACGT")) != hash_value(f)
    before = hash_value([f])
    f.write("ACGA")
    assert hash_value([f]) != before


def test_relative_identity_survives_moving_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for project in ("one", "two"):
        (tmp_path / project / "data").mkdir(parents=True)
        (tmp_path / project / "data" / "in.txt").write_text("same")
    monkeypatch.chdir(tmp_path / "one")
    first = hash_value(File("data/in.txt"))
    monkeypatch.chdir(tmp_path / "two")
    assert hash_value(File("data/in.txt")) == first


def test_digest_is_cached_and_recomputed_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = File(tmp_path / "a.txt").write("one")
    calls: list[object] = []
    import ledgerflow.values.file as file_module

    real = file_module.file_digest

    def counting(path: object, mode: str = "content") -> str:
        calls.append(path)
        return real(path, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(file_module, "file_digest", counting)
    first = f.hash
    assert f.hash == first and len(calls) == 1
    (tmp_path / "a.txt").write_text("two")
    os.utime(tmp_path / "a.txt", ns=(f.stat_signature()[1] + 10**9,) * 2)
    assert f.hash != first and len(calls) == 2
    assert f.stat_signature() == (3, os.stat(tmp_path / "a.txt").st_mtime_ns)


def test_fast_hash_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = File(tmp_path / "a.txt").write("one")
    content = f.hash
    monkeypatch.setattr(File, "hash_mode", "fast")
    assert f.hash == file_digest(f.path, "fast") != content


def test_missing_file_hash_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="missing.vcf"):
        hash_value(File(tmp_path / "missing.vcf"))
