"""Exports appear whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerflow.errors import UsageError
from ledgerflow.provenance._atomic import atomic_stream


def test_a_failure_mid_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "events.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_stream(target) as stream:
        stream.write("half of the new\n")
        raise RuntimeError("the ledger went away")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]

    with atomic_stream(target) as stream:
        stream.write("new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]


def test_targets_that_cannot_be_written_are_refused_before_writing(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    for target, reason in [(tmp_path / "no/dir/x.zip", "no directory"),
                           (tmp_path / "a-file/x.zip", "no directory"),
                           (tmp_path, "is a directory")]:
        with pytest.raises(UsageError) as info, atomic_stream(target, binary=True) as stream:
            stream.write(b"never")
        assert reason in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
