"""``cache verify``: every cache entry and value checked the way a run checks a hit.

A cache entry must be consistent with the call it claims (its call hash is
``combine(task_hash, args_hash, value_hash)``, and the ``lf_call`` row says the same) and
point to a value the ledger holds. A value must be reachable (inline, or in its value
store), and its bytes must check out: plain data is decoded and must hash to its address;
a pickle is never loaded here, its bytes must match their recorded digest and its writer
must be trusted (``cache.trust``), else runs recompute it. A value whose ``File`` changed
on disk is not a problem of the ledger (the call is simply computed again) and is not
reported. Values are read in chunks, so a large ledger is checked in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.db.chunks import chunks
from ledgerflow.db.model import DEFAULT_BIND
from ledgerflow.engine.cache import entry_problem
from ledgerflow.engine.valuing import Values
from ledgerflow.errors import IntegrityError, LedgerflowError
from ledgerflow.ledger import tables as t
from ledgerflow.values import Trust, bytes_problem, content_problem, load_stored
from ledgerflow.values.codec import PICKLE
from ledgerflow.values.signing import SIGNATURE_LENGTH, verify

__all__ = ["CacheProblem", "VerifyReport", "verify_cache"]

#: Value rows read (with their bytes) per query.
CHUNK = 200


@dataclass(frozen=True)
class CacheProblem:
    """One thing wrong: a cache entry (``kind="entry"``) or a value (``kind="value"``)."""

    kind: str
    key: str  # the value hash, or "task_hash/args_hash" of an entry
    task: str | None
    message: str

    def line(self) -> str:
        what = f"cache entry {self.key}" if self.kind == "entry" else f"value {self.key}"
        task = f" ({self.task})" if self.task else ""
        return f"{what}{task}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "task": self.task, "message": self.message}


@dataclass(frozen=True)
class VerifyReport:
    """What ``cache verify`` checked and found."""

    entries: int
    values: int
    problems: tuple[CacheProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "values": self.values,
                "problems": [p.to_json() for p in self.problems]}  # fmt: skip


def verify_cache(settings: Settings, *, bind: str = DEFAULT_BIND) -> VerifyReport:
    """Check every cache entry and every value of the ledger; nothing is changed."""
    database = Database(settings, read_only=True)
    values = Values(settings)
    trust = Trust.of(settings)
    problems: list[CacheProblem] = []
    try:
        with database.engine(bind).connect() as conn:
            entries = _check_entries(conn, problems)
            count = 0
            for row in _value_rows(conn):
                count += 1
                message = _value_problem(values, trust, *row)
                if message is not None:
                    problems.append(CacheProblem("value", row[0], None, message))
    finally:
        database.dispose()
    return VerifyReport(entries, count, tuple(problems))


def _check_entries(conn: Connection, problems: list[CacheProblem]) -> int:
    c, k, v, d = t.cache_entry, t.call, t.value, t.task_def
    query = (
        select(c.c.task_hash, c.c.args_hash, c.c.call_hash, c.c.value_hash, k.c.task_hash,
               k.c.args_hash, k.c.value_hash, v.c.hash, d.c.name)
        .outerjoin(k, k.c.hash == c.c.call_hash)
        .outerjoin(v, v.c.hash == c.c.value_hash)
        .outerjoin(d, d.c.hash == c.c.task_hash)
        .order_by(c.c.task_hash, c.c.args_hash)
    )
    count = 0
    for row in conn.execute(query):
        count += 1
        task_hash, args_hash, call_hash, value_hash = row[:4]
        message = entry_problem(task_hash, args_hash, call_hash, value_hash, tuple(row[4:7]))
        if message is None and row[7] is None:
            message = f"its value {value_hash} is not in the ledger"
        if message is not None:
            key = f"{task_hash}/{args_hash}"
            problems.append(CacheProblem("entry", key, row[8], message))
    return count


def _value_rows(conn: Connection) -> Iterator[tuple[Any, ...]]:
    v = t.value
    hashes = [h for (h,) in conn.execute(select(v.c.hash).order_by(v.c.hash))]
    columns = (v.c.hash, v.c.format, v.c.inline, v.c.store_key, v.c.signature, v.c.writer)
    for chunk in chunks(hashes, CHUNK):
        yield from conn.execute(select(*columns).where(v.c.hash.in_(chunk)).order_by(v.c.hash))


def _value_problem(
    values: Values,
    trust: Trust,
    value_hash: str,
    fmt: str,
    inline: bytes | None,
    store_key: str | None,
    signature: str | None,
    writer: str | None,
) -> str | None:
    if inline is not None:
        data = bytes(inline)
    elif store_key:
        try:
            data = values.store.get(store_key)
        except LedgerflowError as exc:
            return f"not reachable in its value store ({exc.message})"
        except OSError as exc:
            return f"not reachable in its value store ({exc})"
    else:
        return "holds no bytes and no value-store key"
    if fmt == PICKLE:
        if signature is not None and len(signature) == SIGNATURE_LENGTH:
            if verify(data, signature, trust.legacy_key):
                return None
            return "pickled by an earlier ledgerflow and signed with a key this checkout " \
                "does not have: runs compute it again"
        problem = bytes_problem(fmt, data, signature)
        if problem is not None:
            return problem
        if signature is None:
            return "it is a pickle with no digest of its bytes"
        if not trust.allows(writer):
            who = repr(writer) if writer is not None else "an unknown writer"
            return f"pickled by {who}, who is not in cache.trust: runs compute it again"
        return None  # a pickle is never loaded just to check it
    try:
        value = load_stored(fmt, data, signature, writer, trust)
    except IntegrityError as exc:
        return exc.message
    why = content_problem(value, value_hash)
    if why is None or why.startswith("file "):
        return None
    return why
