"""The signing key of earlier versions: read (never created) to load a checkout's old pickles."""

from __future__ import annotations

from pathlib import Path

import pytest

import ledgerflow
from ledgerflow import task
from ledgerflow.config.settings import Settings
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.values.signing import KEY_ENV, KEY_FILE, legacy_key


def test_the_old_key_is_read_from_the_variable_or_the_file_and_never_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert legacy_key(tmp_path) is None
    assert not (tmp_path / ".ledgerflow").exists()
    (tmp_path / ".ledgerflow").mkdir()
    (tmp_path / KEY_FILE).write_text("cd" * 32 + "\n")
    assert legacy_key(tmp_path) == bytes.fromhex("cd" * 32)
    monkeypatch.setenv(KEY_ENV, "ab" * 32)
    assert legacy_key(tmp_path) == bytes.fromhex("ab" * 32)
    for bad in ("not hex", "abcd", ""):
        monkeypatch.setenv(KEY_ENV, bad)
        assert legacy_key(tmp_path) is None


@task
def _doubled(values: list[int]) -> list[int]:
    return values * 2


def test_a_run_needs_no_key_and_writes_none(
    ledger_settings: Settings, ledger: LedgerRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = ledger_settings.root / KEY_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\x00junk\xff not a key\n")  # a garbage old key is no error
    assert ledgerflow.run(_doubled([1, 2]), settings=ledger_settings) == [1, 2, 1, 2]
    path.unlink()
    assert ledgerflow.execute(_doubled([1, 2]), settings=ledger_settings).counts["cached"] == 1
    assert not path.exists()
    for row in ledger.rows("lf_value"):
        assert row["signature"] is not None and len(row["signature"]) == 40


class Old:
    def __init__(self, n: int) -> None:
        self.n = n


@task
def old(n: int) -> Old:
    return Old(n)


def test_a_ledger_signed_by_an_earlier_version_keeps_its_pickles_where_the_key_is(
    ledger_settings: Settings, ledger: LedgerRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from ledgerflow.db import Database
    from ledgerflow.hashing import hash_value
    from ledgerflow.ledger import tables
    from ledgerflow.values.signing import sign

    monkeypatch.delenv(KEY_ENV, raising=False)
    ledgerflow.run(old(1), settings=ledger_settings)
    (row,) = ledger.rows("lf_value", hash=hash_value(Old(1)))
    key = b"k" * 32
    database = Database(ledger_settings, role="admin")  # as an earlier version left it
    try:
        with database.engine().begin() as conn:
            conn.execute(update(tables.value).where(tables.value.c.hash == row["hash"])
                         .values(signature=sign(row["inline"], key)))  # fmt: skip
    finally:
        database.dispose()
    path = ledger_settings.root / KEY_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_text(key.hex())
    kept = ledgerflow.execute(old(1), settings=ledger_settings)
    assert kept.counts["cached"] == 1 and kept.value.n == 1 and kept.notes == []
    path.unlink()  # another checkout, without that key
    other = ledgerflow.execute(old(1), settings=ledger_settings)
    assert other.counts["done"] == 1 and other.value.n == 1
    (note,) = other.notes
    assert "pickled by an earlier ledgerflow and signed with a key this checkout does not have" in note
