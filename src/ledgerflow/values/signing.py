"""Reading ledgers written before values were content-addressed without keys.

Earlier versions signed every stored value with an HMAC key kept per checkout
(``$LEDGERFLOW_SIGNING_KEY`` or ``.ledgerflow/signing.key``) and wrote the 64-hex signature
in ``lf_value.signature``. Nothing is signed any more; a pickle from that time is loaded
only when the key that signed it is still there, so a checkout keeps its own old cache.
The key is read, never created.
"""

from __future__ import annotations

import hmac
import os
from hashlib import sha256
from pathlib import Path

KEY_ENV = "LEDGERFLOW_SIGNING_KEY"
KEY_FILE = Path(".ledgerflow") / "signing.key"
MIN_KEY_BYTES = 16
#: Length of an HMAC-SHA256 signature in hex: how a legacy row is told from a digest.
SIGNATURE_LENGTH = 64


def sign(data: bytes, key: bytes) -> str:
    """HMAC-SHA256 of ``data`` as hex (what earlier versions stored)."""
    return hmac.new(key, data, sha256).hexdigest()


def verify(data: bytes, signature: str | None, key: bytes | None) -> bool:
    """Whether ``signature`` is ``sign(data, key)`` (constant-time comparison)."""
    if not key or not signature or not isinstance(signature, str):
        return False
    return hmac.compare_digest(sign(data, key), signature)


def legacy_key(root: Path) -> bytes | None:
    """The checkout's old signing key, if it still has one (None when absent or unreadable:
    its values are then recomputed)."""
    text = os.environ.get(KEY_ENV)
    if text is None:
        try:
            text = (Path(root) / KEY_FILE).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            return None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        return None
    return key if len(key) >= MIN_KEY_BYTES else None
