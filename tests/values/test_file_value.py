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
    assert File(File("a")).path == "a"


def test_path_is_a_string_with_a_path_accessor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fastq = File(Path("data") / "sample4.fastq").write("ACGT")
    assert isinstance(fastq.path, str) and fastq.path == "data/sample4.fastq"
    bam = File(fastq.path.replace("fastq", "bam"))  # as redun's workflows write it
    assert bam.path == "data/sample4.bam" and str(bam) == "data/sample4.bam"
    assert File("./out//x.vcf").path == "out/x.vcf"  # normalised as pathlib does
    assert fastq.as_path() == Path("data/sample4.fastq") and fastq.as_path().stem == "sample4"
    assert fastq.as_posix() == "data/sample4.fastq"
    assert pickle.loads(pickle.dumps(fastq)).path == "data/sample4.fastq"


# Computed with File.path still a pathlib.Path: a str path must not change any File's
# identity, or every cached result recorded before would miss.
KNOWN_IDENTITIES = {
    "s.fastq": ("7953c552906b29e2d06c9c3306e4e5fa9d49dfa7", "0ac0ccd7b07a0c3fe4d51bb00a71a9483c08ed7a"),
    "./out//a.txt": ("96f89b7afc4d36b38bca9560807fc1c73bc5129e", "1156152e9a61fc0587814f6961801f2fd70a3cde"),
}


def test_identity_is_the_one_recorded_when_path_was_a_pathlib_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    File("s.fastq").write(b"reads of sample4")
    File("out/a.txt").write(b"x")
    for path, (alone, nested) in KNOWN_IDENTITIES.items():
        f = File(path)
        assert hash_value(f) == alone
        assert hash_value([f, {"k": f}]) == nested


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
