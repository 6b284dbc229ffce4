"""HMAC signatures and the project's signing key."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import ledgerflow
from ledgerflow import task
from ledgerflow.config.settings import Settings
from ledgerflow.errors import ConfigError
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.values import load_signing_key, sign, verify


def test_sign_and_verify() -> None:
    key = b"secret-key-0123456789"
    signature = sign(b"data", key)
    assert len(signature) == 64 and verify(b"data", signature, key)
    assert not verify(b"datA", signature, key)
    assert not verify(b"data", signature, b"another-key-0123456")
    assert not verify(b"data", signature[:-1] + "0", key) or signature.endswith("0")
    assert not verify(b"data", None, key) and not verify(b"data", "", key)


def test_key_file_is_created_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGERFLOW_SIGNING_KEY", raising=False)
    key = load_signing_key(tmp_path)
    path = tmp_path / ".ledgerflow" / "signing.key"
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bytes.fromhex(path.read_text()) == key
    assert load_signing_key(tmp_path) == key
    assert load_signing_key(tmp_path / "other") != key


def test_concurrent_first_use_agrees_on_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGERFLOW_SIGNING_KEY", raising=False)
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_signing_key(tmp_path), range(16)))
    assert len(keys) == 1
    assert sorted(p.name for p in (tmp_path / ".ledgerflow").iterdir()) == ["signing.key"]


def test_environment_variable_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_SIGNING_KEY", "ab" * 32)
    assert load_signing_key(tmp_path) == bytes.fromhex("ab" * 32)
    assert not (tmp_path / ".ledgerflow").exists()


@pytest.mark.parametrize("bad", ["not hex", "abcd", ""])
def test_invalid_key_is_a_config_error_without_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("LEDGERFLOW_SIGNING_KEY", bad)
    with pytest.raises(ConfigError, match="LEDGERFLOW_SIGNING_KEY") as info:
        load_signing_key(tmp_path)
    assert bad not in str(info.value) or bad == ""
    monkeypatch.delenv("LEDGERFLOW_SIGNING_KEY")
    (tmp_path / ".ledgerflow").mkdir()
    (tmp_path / ".ledgerflow" / "signing.key").write_text("zz")
    with pytest.raises(ConfigError, match="signing.key"):
        load_signing_key(tmp_path)


@task
def _doubled(values: list[int]) -> list[int]:
    return values * 2


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_a_garbage_key_file_stops_the_run_before_anything_is_recorded(
    ledger_settings: Settings, ledger: LedgerRows, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.delenv("LEDGERFLOW_SIGNING_KEY", raising=False)
    path = ledger_settings.root / ".ledgerflow" / "signing.key"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\x00junk\xff not a key\n")
    with pytest.raises(ConfigError) as info:
        ledgerflow.execute(_doubled([1, 2]), settings=ledger_settings, executor=executor)
    assert info.value.exit_code == 3
    assert str(path) in str(info.value) and "signing key" in str(info.value)
    assert ledger.count("lf_run") == 0 and ledger.count("lf_task_run") == 0
    path.write_text("not hex at all\n")
    with pytest.raises(ConfigError):
        ledgerflow.execute(_doubled([1, 2]), settings=ledger_settings, executor=executor)
    path.unlink()  # a missing key is created on first use, and the run goes ahead
    assert ledgerflow.run(_doubled([1, 2]), settings=ledger_settings) == [1, 2, 1, 2]
