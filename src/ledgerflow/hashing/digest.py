"""The digest every ledgerflow hash is made of: BLAKE2b with a 20-byte digest (40 hex chars)."""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

DIGEST_SIZE = 20
HEX_LENGTH = 2 * DIGEST_SIZE


def hash_bytes(data: bytes) -> str:
    """Hex digest of ``data``."""
    return blake2b(data, digest_size=DIGEST_SIZE).hexdigest()


def combine(*hashes: str) -> str:
    """Order-sensitive hash of hashes: ``combine(a, b) != combine(b, a)``.

    Each part is length-prefixed, so ``combine("ab", "c") != combine("a", "bc")``.
    """
    h = blake2b(b"%d;" % len(hashes), digest_size=DIGEST_SIZE)
    for part in hashes:
        raw = part.encode()
        h.update(b"%d:" % len(raw))
        h.update(raw)
    return h.hexdigest()


def arguments_hash(names: tuple[str, ...] | list[str], digests: tuple[str, ...] | list[str]) -> str:
    """The hash of a call's arguments: each parameter's name with its value's hash, in order.

    Written once: a run and a dry run hash arguments through this function only.
    """
    parts: list[str] = []
    for name, digest in zip(names, digests, strict=False):
        parts.append(name)
        parts.append(digest)
    return combine(*parts)


def bytes_hasher() -> Any:
    """A BLAKE2b hasher fed piece by piece: ``hexdigest()`` equals :func:`hash_bytes` of
    all the pieces joined."""
    return blake2b(digest_size=DIGEST_SIZE)
