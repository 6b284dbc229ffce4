"""Using stored values safely without keys: content addresses and trusted writers.

A value's address is its content hash (:func:`ledgerflow.hashing.hash_value`). A value in
a safe format is decoded (no code runs) and hashed again: bytes that do not hash to their
address are never used. A pickle cannot be checked that way before it is loaded, and
loading it runs code, so it is loaded only when its writer (``lf_value.writer``, set by the
server on PostgreSQL) is trusted, and only when its bytes still match the digest recorded
with them (``lf_value.signature``: the :func:`~ledgerflow.hashing.hash_bytes` of the stored
bytes). Pickles of earlier versions carry an HMAC there instead and load only with the
checkout's old key (:mod:`ledgerflow.values.signing`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledgerflow.errors import IntegrityError, LedgerflowError, UntrustedValueError
from ledgerflow.hashing import HEX_LENGTH, hash_bytes, hash_value
from ledgerflow.values.codec import PICKLE, SAFE_FORMATS, decode
from ledgerflow.values.file import File
from ledgerflow.values.signing import SIGNATURE_LENGTH, legacy_key, verify

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings

_ATOMS = (type(None), bool, int, float, str, bytes)
TRUST_HINT = "add the writer to cache.trust in ledgerflow.yml to load its pickles"


@dataclass(frozen=True)
class Trust:
    """Whose pickles this process loads."""

    writers: frozenset[str]
    legacy_key: bytes | None = None

    @classmethod
    def of(cls, settings: Settings) -> Trust:
        return cls(settings.trusted_writers, legacy_key(settings.root))

    def allows(self, writer: str | None) -> bool:
        return writer is not None and writer in self.writers


def digest(data: bytes) -> str:
    """What ``lf_value.signature`` holds for bytes written now: their plain digest."""
    return hash_bytes(data)


def bytes_problem(fmt: str, data: bytes, signature: str | None) -> str | None:
    """Why ``data`` is not what was written (None when it is, or cannot be told)."""
    if signature is None or len(signature) != HEX_LENGTH:
        return None
    if hash_bytes(data) != signature:
        return "its stored bytes changed since they were written"
    return None


def load_stored(
    fmt: str, data: bytes, signature: str | None, writer: str | None, trust: Trust
) -> Any:
    """The value stored as ``data``. A safe format is decoded (IntegrityError when corrupt);
    a pickle is loaded only from a trusted writer (UntrustedValueError) and with its bytes
    intact (IntegrityError). The caller checks the content address (:func:`content_problem`)."""
    if fmt in SAFE_FORMATS:
        return decode(fmt, data)
    if fmt != PICKLE:
        raise IntegrityError(f"unknown stored value format {fmt[:16]!r}")
    if signature is not None and len(signature) == SIGNATURE_LENGTH:
        if not verify(data, signature, trust.legacy_key):
            raise UntrustedValueError(
                "it was pickled by an earlier ledgerflow and signed with a key this checkout "
                "does not have",
                hint="it is computed again",
            )
        return decode(fmt, data)
    if not trust.allows(writer):
        who = repr(writer) if writer is not None else "an unknown writer"
        raise UntrustedValueError(
            f"it was pickled by {who}, who is not in cache.trust", hint=TRUST_HINT
        )
    problem = bytes_problem(fmt, data, signature)
    if problem is not None or signature is None:
        raise IntegrityError(problem or "it is a pickle with no digest of its bytes")
    return decode(fmt, data)


def content_problem(value: Any, value_hash: str) -> str | None:
    """None when ``value`` hashes to ``value_hash``; else why: a file that changed or went
    missing, or bytes that do not hash to their address."""
    try:
        if hash_value(value) == value_hash:
            return None
    except LedgerflowError:
        pass
    files = iter_files(value)
    for item in files:
        if not item.exists():
            return f"file missing: {item.as_posix()}"
    if files:
        return f"file changed: {', '.join(f.as_posix() for f in files)}"
    return "its stored bytes do not hash to its content address"


def iter_files(value: Any) -> list[File]:
    """Every ``File`` inside a value (lists, tuples, sets, dicts, dataclasses)."""
    found: list[File] = []
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if type(item) in _ATOMS or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, File):
            found.append(item)
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return found
