"""Values a pipeline passes around: File, encoding to bytes, safe loading and value stores."""

from ledgerflow.values.codec import FORMATS, SAFE_FORMATS, Encoded, decode, encode
from ledgerflow.values.file import File
from ledgerflow.values.integrity import (
    Trust,
    bytes_problem,
    content_problem,
    digest,
    iter_files,
    load_stored,
)
from ledgerflow.values.opening import open_store
from ledgerflow.values.preview import PREVIEW_LIMIT, preview
from ledgerflow.values.store import DirectoryStore, MemoryStore, ValueStore, check_key

__all__ = [
    "FORMATS",
    "PREVIEW_LIMIT",
    "SAFE_FORMATS",
    "DirectoryStore",
    "Encoded",
    "File",
    "MemoryStore",
    "Trust",
    "ValueStore",
    "bytes_problem",
    "check_key",
    "content_problem",
    "decode",
    "digest",
    "encode",
    "iter_files",
    "load_stored",
    "open_store",
    "preview",
]
