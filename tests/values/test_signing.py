"""HMAC signatures and the project's signing key."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ledgerflow.errors import ConfigError
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
