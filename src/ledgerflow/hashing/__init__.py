"""Pure hashing: canonical value hashes, task code hashes and file digests (40 hex chars)."""

from ledgerflow.hashing.canonical import fingerprint, hash_value, type_name
from ledgerflow.hashing.code import CodeHash, task_code_hash
from ledgerflow.hashing.digest import (
    DIGEST_SIZE,
    HEX_LENGTH,
    arguments_hash,
    combine,
    hash_bytes,
)
from ledgerflow.hashing.files import FileHashMode, file_digest

__all__ = [
    "DIGEST_SIZE",
    "HEX_LENGTH",
    "CodeHash",
    "FileHashMode",
    "arguments_hash",
    "combine",
    "file_digest",
    "fingerprint",
    "hash_bytes",
    "hash_value",
    "task_code_hash",
    "type_name",
]
