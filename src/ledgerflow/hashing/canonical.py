"""Canonical content hashing of Python values.

Every value has a type-tagged canonical encoding (so ``True != 1``, ``[1] != (1,)`` and
``0.0 != -0.0``) and ``hash_value(v)`` is the digest of that encoding. A container's encoding
holds its scalar elements inline and the 20-byte digest of each nested container, so hashing
is a Merkle tree walked with an explicit stack: deep nesting never touches the recursion limit.
Dict and set entries are sorted by their encodings, which makes them order-independent.

Nothing depends on ``id()``, ``hash()`` or pickle bytes (except the documented last-resort
fallback), so a hash is the same in every process and on every run of the same Python.

Extending: ``@fingerprint.register(MyType)`` with a function returning a hex digest (build it
from ``hash_value``/``combine`` of the object's parts), or define ``__ledgerflow_hash__(self)``
on the class. Built-in scalar and container types are fixed and cannot be re-registered.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import pickle
import threading
import uuid
from collections.abc import Callable, Generator, Iterable
from decimal import Decimal
from enum import Enum
from functools import singledispatch
from hashlib import blake2b
from pathlib import PosixPath, PurePath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any

from ledgerflow.errors import SerializationError, UsageError
from ledgerflow.hashing.digest import DIGEST_SIZE

Node = Generator[Any, bytes, bytes]

_LEAF_KIND = 0
_HEX_KIND = 1
_NODE_KIND = 2

_HEAPTYPE = 1 << 9


def _text(tag: bytes, text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return b"%s%d:%s" % (tag, len(raw), raw)


def _enc_str(o: str) -> bytes:
    raw = o.encode("utf-8", "surrogatepass")
    return b"s%d:%s" % (len(raw), raw)


def _enc_time(o: _dt.time) -> bytes:
    return _text(b"t", f"{o.isoformat()}|{o.fold}")


def _enc_datetime(o: _dt.datetime) -> bytes:
    return _text(b"dt", f"{o.isoformat()}|{o.fold}")


_PATH_TAGS = {PurePosixPath: b"pp", PureWindowsPath: b"pw"}


def _enc_path(o: PurePath) -> bytes:
    flavour = PureWindowsPath if isinstance(o, PureWindowsPath) else PurePosixPath
    return _text(_PATH_TAGS[flavour], str(o))


_LEAF: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda o: b"N",
    bool: lambda o: b"T" if o else b"F",
    int: b"i%x;".__mod__,
    float: b"f%r;".__mod__,
    complex: lambda o: b"c%r,%r;" % (o.real, o.imag),
    str: _enc_str,
    bytes: lambda o: b"b%d:%s" % (len(o), o),
    bytearray: lambda o: b"y%d:%s" % (len(o), o),
    _dt.datetime: _enc_datetime,
    _dt.date: lambda o: _text(b"d", o.isoformat()),
    _dt.time: _enc_time,
    _dt.timedelta: lambda o: b"td%d,%d,%d;" % (o.days, o.seconds, o.microseconds),
    Decimal: lambda o: _text(b"dec", str(o)),
    uuid.UUID: lambda o: b"u" + o.bytes,
}
for _path_type in (PurePosixPath, PureWindowsPath, PosixPath, WindowsPath):
    _LEAF[_path_type] = _enc_path


def _hex_ref(digest: str) -> bytes:
    return _text(b"h", digest)


def _seq_node(obj: Iterable[Any], size: int, head: bytes) -> Node:
    parts = [head, b"%d:" % size]
    append = parts.append
    leaf = _LEAF.get
    for item in obj:
        enc = leaf(type(item))
        append(enc(item) if enc is not None else (yield item))
    return b"".join(parts)


def _map_node(items: Iterable[tuple[Any, Any]], size: int, head: bytes) -> Node:
    entries: list[bytes] = []
    append = entries.append
    leaf = _LEAF.get
    for key, value in items:
        enc = leaf(type(key))
        key_bytes = enc(key) if enc is not None else (yield key)
        enc = leaf(type(value))
        append(key_bytes + (enc(value) if enc is not None else (yield value)))
    entries.sort()
    return b"%s%d:%s" % (head, size, b"".join(entries))


def _set_node(obj: Iterable[Any], size: int, head: bytes) -> Node:
    entries: list[bytes] = []
    append = entries.append
    leaf = _LEAF.get
    for item in obj:
        enc = leaf(type(item))
        append(enc(item) if enc is not None else (yield item))
    entries.sort()
    return b"%s%d:%s" % (head, size, b"".join(entries))


def _leaf_encodings(items: Iterable[Any]) -> list[bytes] | None:
    """Encodings of ``items`` when they are all scalars of one type (the common, fast case)."""
    kinds = set(map(type, items))
    if len(kinds) != 1:
        return [] if not kinds else None
    enc = _LEAF.get(kinds.pop())
    return None if enc is None else list(map(enc, items))


def _dict_node(o: dict[Any, Any], head: bytes) -> Node:
    keys = _leaf_encodings(o)
    values = _leaf_encodings(o.values()) if keys is not None else None
    if values is not None and keys is not None:
        entries = list(map(bytes.__add__, keys, values))
        entries.sort()
        return b"%s%d:%s" % (head, len(o), b"".join(entries))
    return (yield from _map_node(o.items(), len(o), head))


def _sequence_node(o: list[Any] | tuple[Any, ...], head: bytes) -> Node:
    kinds = set(map(type, o))
    if len(kinds) <= 1:
        kind = kinds.pop() if kinds else int
        if kind is int:
            return b"%s%d:%s" % (head, len(o), (b"i%x;" * len(o)) % tuple(o))
        enc = _LEAF.get(kind)
        if enc is not None:
            return b"%s%d:%s" % (head, len(o), b"".join(map(enc, o)))
    return (yield from _seq_node(o, len(o), head))


def _unordered_node(o: set[Any] | frozenset[Any], head: bytes) -> Node:
    encoded = _leaf_encodings(o)
    if encoded is not None:
        encoded.sort()
        return b"%s%d:%s" % (head, len(o), b"".join(encoded))
    return (yield from _set_node(o, len(o), head))


_NODES: dict[type, tuple[Callable[[Any, bytes], Node], bytes]] = {
    list: (_sequence_node, b"["),
    tuple: (_sequence_node, b"("),
    dict: (_dict_node, b"{"),
    set: (_unordered_node, b"<"),
    frozenset: (_unordered_node, b">"),
}

_TYPE_TAGS: dict[type, bytes] = {}


def type_name(t: type) -> str:
    """``module.QualName`` of a type, the name ledgerflow shows and hashes."""
    return f"{t.__module__}.{t.__qualname__}"


def _type_tag(t: type) -> bytes:
    tag = _TYPE_TAGS.get(t)
    if tag is None:
        tag = _TYPE_TAGS[t] = _text(b"@", type_name(t))
    return tag


def _dataclass_node(obj: Any) -> Node:
    names = [f.name for f in dataclasses.fields(obj)]
    items = ((name, getattr(obj, name)) for name in names)
    return _map_node(items, len(names), b"D" + _type_tag(type(obj)))


def _plain_object(t: type) -> bool:
    """A Python class whose instances pickle as their ``__dict__`` (no custom reduce/state)."""
    return (
        bool(t.__flags__ & _HEAPTYPE)
        and t.__reduce_ex__ is object.__reduce_ex__
        and t.__reduce__ is object.__reduce__
        and t.__getstate__ is object.__getstate__
        and not hasattr(t, "__slots__")
    )


def _pickle_digest(obj: Any) -> bytes:
    try:
        data = pickle.dumps(obj, protocol=5)
    except Exception as exc:
        raise SerializationError(
            f"cannot hash a value of type {type_name(type(obj))}: it has no fingerprint "
            f"and cannot be pickled ({exc})",
            hint="register one with @ledgerflow.hashing.fingerprint.register or define "
            "__ledgerflow_hash__ on the class",
        ) from exc
    return b"P" + _type_tag(type(obj)) + blake2b(data, digest_size=DIGEST_SIZE).digest()


_LAZY_HANDLERS = {"numpy": "ledgerflow.hashing._numpy", "pandas": "ledgerflow.hashing._pandas"}
_lazy_lock = threading.Lock()


def _load_lazy(top_module: str) -> None:
    with _lazy_lock:
        handler = _LAZY_HANDLERS.pop(top_module, None)
        if handler is not None:
            importlib.import_module(handler)


def _classify(obj: Any) -> tuple[int, Any]:
    """How a non-scalar value is encoded: (kind, encoding bytes | hex digest | node)."""
    t = type(obj)
    node = _NODES.get(t)
    if node is not None:
        return _NODE_KIND, node[0](obj, node[1])
    top = t.__module__.partition(".")[0]
    if top in _LAZY_HANDLERS:
        _load_lazy(top)
    impl = fingerprint.dispatch(t)
    if impl is not _generic_fingerprint:
        return _HEX_KIND, _check_hex(impl(obj), t)
    custom = getattr(t, "__ledgerflow_hash__", None)
    if custom is not None:
        return _HEX_KIND, _check_hex(custom(obj), t)
    if isinstance(obj, Enum):
        return _LEAF_KIND, b"E" + _type_tag(t) + _enc_str(obj.name)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _NODE_KIND, _dataclass_node(obj)
    for base in t.__mro__[1:]:
        leaf = _LEAF.get(base)
        if leaf is not None:
            return _LEAF_KIND, _type_tag(t) + leaf(obj)
        node = _NODES.get(base)
        if node is not None:
            return _NODE_KIND, node[0](obj, _type_tag(t) + node[1])
    if _plain_object(t) and hasattr(obj, "__dict__"):
        return _NODE_KIND, _map_node(vars(obj).items(), len(vars(obj)), b"O" + _type_tag(t))
    return _LEAF_KIND, _pickle_digest(obj)


def _check_hex(digest: Any, t: type) -> str:
    if type(digest) is not str:
        raise UsageError(
            f"the fingerprint of {type_name(t)} returned {type(digest).__name__}, expected a str",
            hint="return hash_value(...) or combine(...) of the object's parts",
        )
    return digest


def _node_digest(root: Any, gen: Node) -> bytes:
    """Raw digest of a container, walking nested containers with an explicit stack."""
    stack: list[tuple[Node, int]] = []
    current = id(root)
    active = {current}
    reply: bytes | None = None
    while True:
        try:
            child = gen.send(reply)  # type: ignore[arg-type]
        except StopIteration as done:
            digest = blake2b(done.value, digest_size=DIGEST_SIZE).digest()
            if not stack:
                return digest
            active.discard(current)
            gen, current = stack.pop()
            reply = b"#" + digest
            continue
        kind, payload = _classify(child)
        if kind == _NODE_KIND:
            child_id = id(child)
            if child_id in active:
                raise SerializationError(
                    f"cannot hash a value of type {type_name(type(root))}: it contains itself "
                    f"(a {type_name(type(child))} refers back to an enclosing value)",
                    hint="define __ledgerflow_hash__ on the class to hash it another way",
                )
            stack.append((gen, current))
            active.add(child_id)
            gen, current = payload, child_id
            reply = None
        elif kind == _HEX_KIND:
            reply = _hex_ref(payload)
        else:
            reply = payload


#: ``bytes`` longer than this are hashed where they are rather than through their encoding.
_IN_PLACE_BYTES = 1 << 16


def hash_value(obj: Any) -> str:
    """Canonical content hash of ``obj`` (40 hex chars), stable across processes and runs.

    Objects without a built-in encoding, a registered fingerprint, ``__ledgerflow_hash__``,
    dataclass fields or a plain ``__dict__`` are hashed by their pickle bytes, which may vary
    between processes (for example a set inside such an object).
    """
    t = type(obj)
    if t is bytes and len(obj) > _IN_PLACE_BYTES:  # the same digest, without a copy of obj
        digest = blake2b(b"b%d:" % len(obj), digest_size=DIGEST_SIZE)
        digest.update(obj)
        return digest.hexdigest()
    enc = _LEAF.get(t)
    if enc is not None:
        return blake2b(enc(obj), digest_size=DIGEST_SIZE).hexdigest()
    kind, payload = _classify(obj)
    if kind == _NODE_KIND:
        return _node_digest(obj, payload).hex()
    if kind == _HEX_KIND:
        return payload  # type: ignore[no-any-return]
    return blake2b(payload, digest_size=DIGEST_SIZE).hexdigest()


@singledispatch
def fingerprint(obj: Any) -> str:
    """Content hash of ``obj``; register implementations for your own types.

    >>> @fingerprint.register(Point)
    ... def _(p: Point) -> str:
    ...     return hash_value(("Point", p.x, p.y))
    """
    return hash_value(obj)


_generic_fingerprint = fingerprint.dispatch(object)
