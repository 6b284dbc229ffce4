"""Large values to and from a value store without a second copy of them in memory.

Writing: an encoder writes into a :class:`Spool`, which keeps a small value in memory (for
its ledger row) and sends a large one to the store as it comes, digesting it on the way.
A numpy array goes out as ``.npy`` straight from its memory, a ``bytes`` value as tagged
JSON in base64 pieces. Reading: :func:`read_npy` fills one new array from the stream and
:func:`read_tjson_bytes` decodes the base64 straight into one new ``bytes``. Each side holds
the value once, plus a few megabytes in flight.
"""

from __future__ import annotations

import binascii
import io
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from ledgerflow.errors import IntegrityError
from ledgerflow.hashing import type_name
from ledgerflow.hashing.digest import bytes_hasher
from ledgerflow.values.codec import NPY, TJSON
from ledgerflow.values.preview import preview
from ledgerflow.values.store import CHUNK_SIZE, Chunk, Upload, stream_size

if TYPE_CHECKING:
    from ledgerflow.values.store import ValueStore

#: The tagged JSON of a ``bytes`` value is exactly ``{"$bytes":"<base64>"}``.
TJSON_BYTES_HEAD = b'{"$bytes":"'
TJSON_BYTES_TAIL = b'"}'
#: Base64 is written and read in pieces of this many characters (a multiple of 4).
_B64_PIECE = (CHUNK_SIZE // 4) * 4


class Streamed(NamedTuple):
    """A value encoded straight into the value store: what its ledger row says of it."""

    format: str
    type_name: str
    preview: str
    size: int
    digest: str  # hash_bytes of the bytes stored


#: What :func:`read_streamed` returns for a stored value it does not read as a stream.
NOT_STREAMED: Any = object()


def write_streamed(obj: Any, limit: int, open_upload: Callable[[], Upload]) -> Streamed | None:
    """Encode a numpy array or a ``bytes`` value larger than ``limit`` straight into the
    upload ``open_upload()`` gives, in the format :func:`~ledgerflow.values.codec.encode`
    gives it (``.npy``, tagged JSON) and with the same bytes. None for any other value
    (encode it in memory)."""
    t = type(obj)
    write: Callable[[Any, Any], None]
    if t is bytes and len(obj) > limit:
        fmt, write = TJSON, write_tjson_bytes
    elif (
        t.__module__ == "numpy" and t.__name__ == "ndarray"
        and not obj.dtype.hasobject and obj.nbytes > limit
    ):  # fmt: skip
        fmt, write = NPY, write_npy
    else:
        return None
    try:
        with Spool(limit, open_upload) as spool:
            write(obj, spool)
            if spool.inline is not None:  # smaller than it looked: keep it in the row
                raise _Small
    except (_Small, ValueError):  # an array numpy will not save without pickle: encode it
        return None
    return Streamed(fmt, type_name(t), preview(obj), spool.size, spool.hexdigest())


class _Small(Exception):
    """A streamed value that stayed under the inline limit."""


def read_streamed(store: ValueStore, key: str, fmt: str) -> Any:
    """A stored ``.npy`` array or tagged-JSON ``bytes`` value, decoded from the store's
    stream into one new object; :data:`NOT_STREAMED` for any other stored value.
    Unchecked: the caller checks it against its content address."""
    if fmt not in (NPY, TJSON):
        return NOT_STREAMED
    with store.open(key) as stream:
        if fmt == NPY:
            return read_npy(stream)
        size = stream_size(stream)
        if size is not None and starts_tjson_bytes(stream):
            return read_tjson_bytes(stream, size)
    return NOT_STREAMED


class Spool:
    """Where an encoder writes one value, as into a binary file.

    Up to ``limit`` bytes stay in memory (:attr:`inline`, for the ledger row); past that,
    everything written so far and what follows goes to the upload ``open_upload()`` gives,
    which is published when the ``with`` block ends (forgotten when it raises). Every byte
    also goes through a BLAKE2b digest (:meth:`hexdigest`, the ``hash_bytes`` of the value).
    """

    def __init__(self, limit: int, open_upload: Callable[[], Upload]) -> None:
        self.limit = limit
        self._open = open_upload
        self._buffer = bytearray()
        self._upload: Upload | None = None
        self._digest = bytes_hasher()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Chunk) -> int:
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        n = len(view)
        self.size += n
        self._digest.update(view)
        if self._upload is None:
            if len(self._buffer) + n <= self.limit:
                self._buffer += view
                return n
            self._upload = self._open().__enter__()
            if self._buffer:
                self._upload.write(self._buffer)
                self._buffer = bytearray()
        self._upload.write(view)
        return n

    def flush(self) -> None:
        pass

    @property
    def inline(self) -> bytes | None:
        """The value's bytes when they stayed in memory; None when they went to the store."""
        return bytes(self._buffer) if self._upload is None else None

    def hexdigest(self) -> str:
        return str(self._digest.hexdigest())

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self._upload is not None:
            self._upload.__exit__(kind, error, traceback)


# -- numpy arrays as .npy -----------------------------------------------------------------


def write_npy(array: Any, out: Any) -> None:
    """``array`` as ``.npy`` (the bytes ``numpy.save`` writes), sent from its own memory
    in pieces of at most 16 MB: no copy of the whole array is made."""
    import numpy as np

    np.lib.format.write_array(out, array, allow_pickle=False)


def read_npy(stream: IO[bytes]) -> Any:
    """The array stored as ``.npy`` in ``stream``, read straight into one new array."""
    import numpy as np

    try:
        return np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise IntegrityError(f"a stored .npy value is corrupt: {exc}") from exc


# -- bytes as tagged JSON -----------------------------------------------------------------


def write_tjson_bytes(data: bytes | bytearray | memoryview, out: Any) -> None:
    """``data`` as the tagged JSON ``{"$bytes":"<base64>"}``, in base64 pieces."""
    view = memoryview(data).cast("B")
    out.write(TJSON_BYTES_HEAD)
    step = (_B64_PIECE // 4) * 3
    for start in range(0, len(view), step):
        out.write(binascii.b2a_base64(view[start : start + step], newline=False))
    out.write(TJSON_BYTES_TAIL)


def starts_tjson_bytes(stream: IO[bytes]) -> bool:
    """Whether a stream (that can ``peek``) holds a tagged-JSON ``bytes`` value."""
    peek = getattr(stream, "peek", None)
    return peek is not None and bytes(peek(len(TJSON_BYTES_HEAD)))[: len(TJSON_BYTES_HEAD)] == (
        TJSON_BYTES_HEAD
    )


def read_tjson_bytes(stream: IO[bytes], size: int) -> bytes:
    """The ``bytes`` value stored as ``{"$bytes":"<base64>"}`` (``size`` bytes in all) in
    ``stream``, decoded piece by piece into one new ``bytes``."""
    head = stream.read(len(TJSON_BYTES_HEAD))
    characters = size - len(TJSON_BYTES_HEAD) - len(TJSON_BYTES_TAIL)
    if head != TJSON_BYTES_HEAD or characters < 0 or characters % 4:
        raise IntegrityError("a stored tjson bytes value is corrupt (not base64 in its tag)")
    reader = io.BufferedReader(_Base64Raw(stream, characters), buffer_size=CHUNK_SIZE)
    value = reader.read(characters // 4 * 3)  # filled in place; shrunk by the padding
    if stream.read() != TJSON_BYTES_TAIL:
        raise IntegrityError("a stored tjson bytes value is corrupt (bad ending)")
    return value


class _Base64Raw(io.RawIOBase):
    """Decoded bytes of ``characters`` base64 characters read from ``stream``."""

    def __init__(self, stream: IO[bytes], characters: int) -> None:
        self._stream = stream
        self._left = characters
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if not self._pending:
            if self._left == 0:
                return 0
            take = min(self._left, max(4, len(target) // 3 * 4), _B64_PIECE)
            text = self._stream.read(take)
            if len(text) != take:
                raise IntegrityError("a stored tjson bytes value is truncated")
            self._left -= take
            try:
                self._pending = memoryview(binascii.a2b_base64(text, strict_mode=True))
            except binascii.Error as exc:
                raise IntegrityError(f"a stored tjson bytes value is corrupt: {exc}") from exc
        n = min(len(target), len(self._pending))
        target[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
