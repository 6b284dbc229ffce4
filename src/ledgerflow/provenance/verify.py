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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, select, tuple_, update

from ledgerflow.config.settings import DatabaseConfig, Settings
from ledgerflow.db import Database
from ledgerflow.db.chunks import chunks
from ledgerflow.db.model import DEFAULT_BIND
from ledgerflow.db.roles import operator_role, require
from ledgerflow.engine.cache import entry_problem
from ledgerflow.engine.valuing import Values
from ledgerflow.errors import IntegrityError, LedgerflowError, NotFoundError
from ledgerflow.ledger import tables as t
from ledgerflow.values import Trust, bytes_problem, content_problem, load_stored, open_store
from ledgerflow.values.codec import PICKLE
from ledgerflow.values.signing import SIGNATURE_LENGTH, verify

__all__ = ["CacheProblem", "RepairReport", "VerifyReport", "repair_cache", "verify_cache"]

#: Value rows read (with their bytes) per query.
CHUNK = 200

#: What ``cache verify --repair`` does about a problem (``CacheProblem.fix``).
ENTRY = "entry"  # remove the cache entry
BYTES = "bytes"  # the value's bytes are damaged or gone: drop them, the next run stores them
UNTRUSTED = "untrusted"  # a pickle nobody trusts: dropped like damaged bytes, when asked


@dataclass(frozen=True)
class CacheProblem:
    """One thing wrong: a cache entry (``kind="entry"``) or a value (``kind="value"``)."""

    kind: str
    key: str  # the value hash, or "task_hash/args_hash" of an entry
    task: str | None
    message: str
    #: what ``--repair`` does about it (ENTRY, BYTES, UNTRUSTED); None: nothing (a store
    #: that cannot be reached now may be back later)
    fix: str | None = field(default=None, compare=False)

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
                found = _value_problem(values, trust, *row)
                if found is not None:
                    problems.append(CacheProblem("value", row[0], None, *found))
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
            problems.append(CacheProblem("entry", key, row[8], message, ENTRY))
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
) -> tuple[str, str | None] | None:
    """``(message, fix)`` when the value cannot be used as it is stored, else None."""
    if inline is not None:
        data = bytes(inline)
    elif store_key:
        try:
            data = values.store.get(store_key)
        except NotFoundError as exc:  # the store answered: the bytes are gone
            return f"not reachable in its value store ({exc.message})", BYTES
        except LedgerflowError as exc:
            return f"not reachable in its value store ({exc.message})", None
        except OSError as exc:
            return f"not reachable in its value store ({exc})", None
    else:
        return "holds no bytes and no value-store key", BYTES
    if fmt == PICKLE:
        if signature is not None and len(signature) == SIGNATURE_LENGTH:
            if verify(data, signature, trust.legacy_key):
                return None
            return "pickled by an earlier ledgerflow and signed with a key this checkout " \
                "does not have: runs compute it again", UNTRUSTED
        problem = bytes_problem(fmt, data, signature)
        if problem is not None:
            return problem, BYTES
        if signature is None:
            return "it is a pickle with no digest of its bytes", BYTES
        if not trust.allows(writer):
            who = repr(writer) if writer is not None else "an unknown writer"
            return f"pickled by {who}, who is not in cache.trust: runs compute it again", UNTRUSTED
        return None  # a pickle is never loaded just to check it
    try:
        value = load_stored(fmt, data, signature, writer, trust)
    except IntegrityError as exc:
        return exc.message, BYTES
    why = content_problem(value, value_hash)
    if why is None or why.startswith("file "):
        return None
    return why, BYTES


#: The operation named in the one line that refuses it to the user role.
REPAIR = "cache verify --repair"


@dataclass(frozen=True)
class RepairReport:
    """``cache verify [--repair]``: what was found, and what went (or, in a dry run,
    would go): inconsistent cache entries, and the bytes of damaged values."""

    verified: VerifyReport
    entries: tuple[str, ...]  # "task_hash/args_hash" of the cache entries removed
    values: tuple[str, ...]  # hashes of the values whose bytes were dropped
    blobs: int  # value-store objects removed (0 in a dry run)
    left: tuple[CacheProblem, ...]  # problems this repair leaves as they are
    dry_run: bool
    drop_untrusted: bool

    @property
    def ok(self) -> bool:
        return self.verified.ok

    @property
    def untrusted_left(self) -> int:
        """Untrusted pickles left as they are (``--drop-untrusted`` would drop them)."""
        return sum(p.fix == UNTRUSTED for p in self.left)

    def to_json(self) -> dict[str, Any]:
        return {**self.verified.to_json(), "repair": {
            "dry_run": self.dry_run, "drop_untrusted": self.drop_untrusted,
            "entries": list(self.entries), "values": list(self.values), "blobs": self.blobs,
            "left": [p.to_json() for p in self.left],
        }}  # fmt: skip


def repair_cache(
    settings: Settings,
    *,
    dry_run: bool = True,
    drop_untrusted: bool = False,
    bind: str = DEFAULT_BIND,
) -> RepairReport:
    """Check the cache as :func:`verify_cache` does, then (unless ``dry_run``) remove what
    it found damaged, with the admin role: inconsistent cache entries go; a value whose
    bytes fail their check (or are gone) loses them, inline and in the value store, and its
    row points at the store key of its hash, where the next run that computes it stores its
    bytes again (any role may add there; the content address, or a pickle's recorded
    digest, still decides whether they are used). Pickles of untrusted writers are dropped
    the same way only with ``drop_untrusted``. Runs, task runs, calls and arguments stay.

    A repair on PostgreSQL needs the admin: with the user role only it raises
    :class:`~ledgerflow.errors.PrivilegeError` before anything is read or changed."""
    config = Database(settings).config(bind)
    if not dry_run:  # refused before anything is read
        _as_admin(settings, config, bind, lambda conn: set())
    verified = verify_cache(settings, bind=bind)
    fixes = {ENTRY, BYTES, UNTRUSTED} if drop_untrusted else {ENTRY, BYTES}
    chosen = [p for p in verified.problems if p.fix in fixes]
    left = tuple(p for p in verified.problems if p.fix not in fixes)
    entries = tuple(p.key for p in chosen if p.kind == "entry")
    values = tuple(p.key for p in chosen if p.kind == "value")
    blobs = 0
    if not dry_run and chosen:
        blobs = _as_admin(settings, config, bind, lambda conn: _remove(conn, entries, values))
    return RepairReport(verified, entries, values, blobs, left, dry_run, drop_untrusted)


def _as_admin(
    settings: Settings,
    config: DatabaseConfig,
    bind: str,
    change: Callable[[Connection], set[str]],
) -> int:
    """Run ``change`` in one transaction of the admin (PrivilegeError for the user role),
    then delete the value-store objects it names; how many there were."""
    database = Database(settings, operator_role(config))  # repairing is the admin's
    try:
        engine = database.engine(bind)
        with engine.connect() as conn, conn.begin():
            require(conn, config, REPAIR, "lf_cache_entry", "DELETE")
            require(conn, config, REPAIR, "lf_value", "UPDATE")
            keys = change(conn)
        if not keys:
            return 0
        store = open_store(settings, engine=engine)  # chunks in the ledger: the admin's too
        removed = 0
        try:
            for key in sorted(keys):
                if store.exists(key):
                    store.delete(key)
                    removed += 1
        finally:
            store.close()
        return removed
    finally:
        database.dispose()


def _damaged_versions(conn: Connection, keys: list[tuple[str, ...]]) -> list[tuple[Any, ...]]:
    """The versions of the cache entries of ``keys`` that fail their check (a key's valid
    versions stay: the newest of them is what runs use)."""
    c, k, v = t.cache_entry, t.call, t.value
    query = (
        select(c.c.task_hash, c.c.args_hash, c.c.call_hash, c.c.value_hash, k.c.task_hash,
               k.c.args_hash, k.c.value_hash, v.c.hash, c.c.created_at)
        .outerjoin(k, k.c.hash == c.c.call_hash)
        .outerjoin(v, v.c.hash == c.c.value_hash)
        .where(tuple_(c.c.task_hash, c.c.args_hash).in_(keys))
    )  # fmt: skip
    return [
        (row[0], row[1], row[8])
        for row in conn.execute(query)
        if row[7] is None or entry_problem(*row[:4], tuple(row[4:7])) is not None
    ]


def _remove(conn: Connection, entries: tuple[str, ...], values: tuple[str, ...]) -> set[str]:
    """Delete ``entries`` and drop the bytes of ``values``; the store keys to delete."""
    c, v = t.cache_entry, t.value
    pairs = [tuple(key.split("/", 1)) for key in entries]
    for chunk in chunks(pairs, CHUNK):
        conn.execute(delete(c).where(tuple_(c.c.task_hash, c.c.args_hash, c.c.created_at).in_(
            _damaged_versions(conn, chunk)
        )))  # fmt: skip
    keys: set[str] = set()
    for chunk in chunks(list(values), CHUNK):
        for value_hash, store_key in conn.execute(
            select(v.c.hash, v.c.store_key).where(v.c.hash.in_(chunk))
        ):
            keys.update(k for k in (value_hash, store_key) if k)
        # plain data is checked by its content address: its digest goes with its bytes; a
        # pickle keeps its digest, so only the very bytes its writer recorded load again
        dropped = {"inline": None, "store_key": v.c.hash}
        conn.execute(update(v).where(v.c.hash.in_(chunk), v.c.format != PICKLE)
                     .values(**dropped, signature=None))  # fmt: skip
        conn.execute(update(v).where(v.c.hash.in_(chunk), v.c.format == PICKLE).values(**dropped))
    return keys
