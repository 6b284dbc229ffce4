"""HMAC signatures of stored values, so that only bytes ledgerflow wrote are ever unpickled."""

from __future__ import annotations

import hmac
import os
import secrets
from hashlib import sha256
from pathlib import Path

from ledgerflow.errors import ConfigError

KEY_ENV = "LEDGERFLOW_SIGNING_KEY"
KEY_FILE = Path(".ledgerflow") / "signing.key"
KEY_BYTES = 32
MIN_KEY_BYTES = 16


def sign(data: bytes, key: bytes) -> str:
    """HMAC-SHA256 of ``data`` as hex."""
    return hmac.new(key, data, sha256).hexdigest()


def verify(data: bytes, signature: str | None, key: bytes) -> bool:
    """Whether ``signature`` is ``sign(data, key)`` (constant-time comparison)."""
    if not signature or not isinstance(signature, str):
        return False
    return hmac.compare_digest(sign(data, key), signature)


def load_signing_key(root: Path) -> bytes:
    """The project's signing key.

    From ``$LEDGERFLOW_SIGNING_KEY`` (hex) when set, else ``<root>/.ledgerflow/signing.key``
    (hex text), which is created with 32 random bytes and mode 0600 when missing. Every machine
    that shares a ledger needs the same key: copy the file's content into the variable.
    """
    env = os.environ.get(KEY_ENV)
    if env is not None:
        return _parse(env, f"${KEY_ENV}")
    path = Path(root) / KEY_FILE
    try:
        return _parse(path.read_text(encoding="ascii"), str(path))
    except FileNotFoundError:
        pass
    except UnicodeDecodeError:
        raise _invalid(str(path)) from None
    return _create(path)


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise _invalid(where) from None
    if len(key) < MIN_KEY_BYTES:
        raise _invalid(where)
    return key


def _invalid(where: str) -> ConfigError:
    return ConfigError(
        f"the signing key in {where} is not a hex string of at least {MIN_KEY_BYTES} bytes",
        hint=f"fix it, or delete {KEY_FILE} to have ledgerflow create a new one; "
        "values signed with the old key are then recomputed",
    )


def _create(path: Path) -> bytes:
    """Write a new key atomically; if another process won the race, use its key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.hex() + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return _parse(path.read_text(encoding="ascii"), str(path))
    finally:
        tmp.unlink(missing_ok=True)
    return key
