"""Values a pipeline passes around: File, encoding to bytes, signatures and value stores."""

from ledgerflow.values.codec import FORMATS, Encoded, decode, decode_verified, encode
from ledgerflow.values.file import File
from ledgerflow.values.opening import open_store
from ledgerflow.values.preview import PREVIEW_LIMIT, preview
from ledgerflow.values.signing import load_signing_key, sign, verify
from ledgerflow.values.store import DirectoryStore, MemoryStore, ValueStore, check_key

__all__ = [
    "FORMATS",
    "PREVIEW_LIMIT",
    "DirectoryStore",
    "Encoded",
    "File",
    "MemoryStore",
    "ValueStore",
    "check_key",
    "decode",
    "decode_verified",
    "encode",
    "load_signing_key",
    "open_store",
    "preview",
    "sign",
    "verify",
]
