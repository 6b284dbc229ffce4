"""Leases on uncached calls (``lf_claim``): each call is computed by one run at a time.

A run that is about to execute calls it found uncached *claims* them: one
``INSERT ... ON CONFLICT DO NOTHING`` per batch, which only one run wins for each call, and
which skips calls whose cache entry already exists. A claim is a lease: it expires
``lease`` seconds after it was taken or last extended, and the owner's heartbeat extends
all its leases in one ``UPDATE``. Every time is the database's clock (``now()`` on
PostgreSQL, SQLite's own), never a host's, so clocks that disagree between hosts do not
matter.

A run that lost a claim *parks* the call and polls (one query for all its parked calls):
once the owner's cache entry appears it is a cache hit; once the lease expired, or the
owner's process is known dead (same host), it takes the call over with a compare-and-set
``UPDATE`` that increments ``fence``. The cache entry of a claimed call is committed only
by its current owner: the recorder deletes the claim (matching run id and fence) in the
transaction that writes the entry, and drops the entry when the claim is no longer its
own. Every statement here commits at once: no lock or transaction is held while a task
computes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledgerflow.config.settings import CacheConfig
from ledgerflow.db.chunks import chunks
from ledgerflow.errors import DatabaseError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

log = logging.getLogger("ledgerflow")

Key = tuple[str, str]  # (task hash, arguments hash)

#: Default seconds a claim stays valid without its owner's heartbeat (``cache.lease``).
LEASE = CacheConfig.lease
#: Default seconds between two polls of a run's parked calls (``cache.poll``).
POLL = CacheConfig.poll
#: Keys per statement (two parameters each on SQLite; two arrays on PostgreSQL).
CHUNK = 1000


def process_gone(host: str | None, pid: int | None) -> bool:
    """Whether ``pid`` on ``host`` is known to be dead (only checkable on this host)."""
    if not host or not pid or host != socket.gethostname():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass
class Polled:
    """What one poll found about a run's parked calls."""

    cached: list[Key] = field(default_factory=list)  # a cache entry exists now
    free: list[Key] = field(default_factory=list)  # neither entry nor claim: claim it again
    #: claims whose lease expired (by the database's clock): key -> (owner's run id, fence)
    expired: dict[Key, tuple[str, int]] = field(default_factory=dict)
    #: claims of a process known dead (on this host), lease or not: key -> (run id, fence)
    dead: dict[Key, tuple[str, int]] = field(default_factory=dict)
    held: int = 0  # still claimed by a live run
    #: claims this run holds already (a takeover whose answer was lost): key -> fence
    mine: dict[Key, int] = field(default_factory=dict)


#: A key ``k`` (columns ``column1``, ``column2``) has a cache entry (a key may have several
#: versions: the lookup picks among them).
CACHED = (
    "EXISTS (SELECT 1 FROM lf_cache_entry c "
    "WHERE c.task_hash = k.column1 AND c.args_hash = k.column2)"
)


class ClaimSql:
    """The statements of one dialect; every time is the database's own."""

    def __init__(self, dialect: str, mark: str) -> None:
        self.mark = mark
        self.sqlite = dialect == "sqlite"
        if dialect == "sqlite":
            fmt = "strftime('%Y-%m-%d %H:%M:%f', 'now'{}) || '000'"  # as SQLAlchemy stores it
            self.now = fmt.format("")
            self._later = lambda seconds: fmt.format(f", '+{seconds:.3f} seconds'")
        else:
            self.now = "now()"
            self._later = lambda seconds: f"now() + interval '{seconds:.3f} seconds'"

    def later(self, seconds: float) -> str:
        return self._later(seconds)

    def values(self, count: int) -> str:
        """The keys as a table ``k`` with columns ``column1``, ``column2``: ``(VALUES (?, ?),
        ...)`` on SQLite; on PostgreSQL two array parameters unnested, so that the statement's
        text is the same for every count (the driver converts it and the server plans it
        once, instead of once per statement with two parameters per key)."""
        if not self.sqlite:
            m = self.mark
            return f"unnest({m}::varchar[], {m}::varchar[]) AS k(column1, column2)"
        row = f"({self.mark}, {self.mark})"
        return f"(VALUES {', '.join([row] * count)}) AS k"

    def execute(self, cursor: Any, sql: str, params: Sequence[Any]) -> None:
        """Run ``sql`` on a driver cursor. On PostgreSQL never as a prepared statement: a
        generic plan cannot see how many keys the arrays hold, and may join them to the
        table by scanning it (dead rows included) once per key; planned each time, the
        server knows the count and probes the primary key."""
        if self.sqlite:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql, params, prepare=False)

    def keys(self, keys: Sequence[Key]) -> list[Any]:
        """The parameters of :meth:`values` for ``keys``."""
        if self.sqlite:
            return [part for key in keys for part in key]
        return [[t for t, _ in keys], [a for _, a in keys]]

    def keyed(self, count: int) -> str:
        """A condition on ``(task_hash, args_hash)`` that the primary key index serves."""
        return (
            f"(task_hash, args_hash) IN (SELECT column1, column2 FROM {self.values(count)})"
        )

    def claim(self, count: int, lease: float) -> str:
        m = self.mark
        return (
            "INSERT INTO lf_claim (task_hash, args_hash, run_id, fence, claimed_at, expires_at, "
            f"host, pid) SELECT k.column1, k.column2, {m}, 1, {self.now}, {self.later(lease)}, "
            f"{m}, {m} FROM {self.values(count)} WHERE NOT {CACHED} "
            "ON CONFLICT (task_hash, args_hash) DO NOTHING RETURNING task_hash, args_hash"
        )

    def poll(self, count: int) -> str:
        return (
            "SELECT 0, k.column1, k.column2, NULL, NULL, NULL, NULL, 0 "
            f"FROM {self.values(count)} WHERE {CACHED} UNION ALL "
            "SELECT 1, l.task_hash, l.args_hash, l.run_id, l.fence, l.host, l.pid, "
            f"CASE WHEN l.expires_at < {self.now} THEN 1 ELSE 0 END "
            f"FROM {self.values(count)} JOIN lf_claim l "
            "ON l.task_hash = k.column1 AND l.args_hash = k.column2"
        )

    def cached(self, count: int) -> str:
        return f"SELECT k.column1, k.column2 FROM {self.values(count)} WHERE {CACHED}"

    def take_over(self, count: int, lease: float, expired_only: bool) -> str:
        """Parameters: new owner's run id, host, pid; old owner's run id, fence; the keys."""
        m = self.mark
        expired = f" AND expires_at < {self.now}" if expired_only else ""
        sets = (
            f"SET run_id = {m}, fence = fence + 1, claimed_at = {self.now}, "
            f"expires_at = {self.later(lease)}, host = {m}, pid = {m}"
        )
        if self.sqlite:
            return (
                f"UPDATE lf_claim {sets} WHERE run_id = {m} AND fence = {m}{expired} "
                f"AND {self.keyed(count)} RETURNING task_hash, args_hash, fence"
            )
        return (
            f"UPDATE lf_claim AS l {sets} FROM {self.values(count)} "
            "WHERE l.task_hash = k.column1 AND l.args_hash = k.column2 "
            f"AND l.run_id = {m} AND l.fence = {m}{expired.replace('expires_at', 'l.expires_at')} "
            "RETURNING l.task_hash, l.args_hash, l.fence"
        )

    def release(self, count: int) -> str:
        """Parameters: the run id, the fence, then the keys (SQLite) or the keys first
        (PostgreSQL, whose planner joins them by hash instead of probing a list per row)."""
        m = self.mark
        if self.sqlite:
            return (
                f"DELETE FROM lf_claim WHERE run_id = {m} AND fence = {m} AND "
                f"{self.keyed(count)} RETURNING task_hash, args_hash"
            )
        return (
            f"DELETE FROM lf_claim AS l USING {self.values(count)} "
            "WHERE l.task_hash = k.column1 AND l.args_hash = k.column2 "
            f"AND l.run_id = {m} AND l.fence = {m} RETURNING l.task_hash, l.args_hash"
        )

    def release_params(self, run_id: str, fence: int, keys: Sequence[Key]) -> list[Any]:
        flat = self.keys(keys)
        return [run_id, fence, *flat] if self.sqlite else [*flat, run_id, fence]

    def take_over_params(
        self, new: tuple[str, str, int], old: tuple[str, int], keys: Sequence[Key]
    ) -> list[Any]:
        flat = self.keys(keys)
        return [*new, *old, *flat] if self.sqlite else [*new, *flat, *old]


class Claims:
    """The claims of one run: taking, polling, taking over, extending and releasing them.

    ``claim``, ``poll`` and ``take_over`` run on the scheduler's thread (a connection of
    their own, every statement committed at once); ``extend`` runs in the heartbeat's
    transaction and ``release`` in the recorder's, which writes the cache entries."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        *,
        lease: float = LEASE,
        poll: float = POLL,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.lease = lease
        self.poll_every = poll
        self.host = (host or socket.gethostname())[:255]
        self.pid = os.getpid() if pid is None else pid
        self.dialect = engine.dialect.name
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self.sql = ClaimSql(self.dialect, mark)
        #: the calls this run holds, with their fence
        self.held: dict[Key, int] = {}
        self.statements = 0
        self._raw: Any = None

    # -- the scheduler's side ----------------------------------------------------------

    def _cursor(self) -> Any:
        if self._raw is None:
            from sqlalchemy.exc import DBAPIError

            try:
                self._raw = self.engine.raw_connection()
            except DBAPIError as exc:
                raise DatabaseError(f"cannot open the ledger: {exc.orig}") from None
            if self.dialect != "sqlite":
                self._raw.driver_connection.autocommit = True  # each statement commits
        return self._raw.cursor()

    def _run(self, sql: str, params: Sequence[Any], what: str) -> list[tuple[Any, ...]]:
        cursor = self._cursor()
        try:
            self.sql.execute(cursor, sql, params)
            self.statements += 1
            return list(cursor.fetchall())
        except Exception as exc:
            if type(exc).__module__.startswith(("sqlite3", "psycopg")):
                raise DatabaseError(
                    f"{what} failed: {exc}",
                    hint="check that the ledger is reachable and migrated (ledgerflow db upgrade)",
                ) from None
            raise
        finally:
            cursor.close()

    def claim(self, keys: Sequence[Key]) -> set[Key]:
        """Claim ``keys``; the ones this run won. A key lost is claimed by another run or
        has a cache entry by now."""
        won: set[Key] = set()
        for chunk in chunks(list(keys), CHUNK):
            rows = self._run(
                self.sql.claim(len(chunk), self.lease),
                [self.run_id, self.host, self.pid, *self.sql.keys(chunk)],
                "claiming calls",
            )
            won.update((t, a) for t, a in rows)
        if won and self.dialect != "sqlite":
            # An owner committing while the insert ran is not seen by its NOT EXISTS (one
            # snapshot per statement): a second look at the cache, now that it has committed.
            done = self.cached(sorted(won))
            if done:
                self.release_now(done)
                won -= done
        for key in won:
            self.held[key] = 1
        return won

    def cached(self, keys: Sequence[Key]) -> set[Key]:
        found: set[Key] = set()
        for chunk in chunks(list(keys), CHUNK):
            rows = self._run(self.sql.cached(len(chunk)), self.sql.keys(chunk), "reading the cache")
            found.update((t, a) for t, a in rows)
        return found

    def poll(self, keys: Iterable[Key]) -> Polled:
        """One look (per :data:`CHUNK` keys) at the cache entries and claims of ``keys``."""
        keys = list(keys)
        polled = Polled()
        entries: set[Key] = set()
        claims: dict[Key, tuple[str, int, str | None, int | None, int]] = {}
        for chunk in chunks(keys, CHUNK):
            params = self.sql.keys(chunk)
            for kind, t, a, run_id, fence, host, pid, expired in self._run(
                self.sql.poll(len(chunk)), params + params, "polling claimed calls"
            ):
                if kind == 0:
                    entries.add((t, a))
                else:
                    claims[(t, a)] = (run_id, int(fence), host, pid, int(expired))
        dead: dict[tuple[str | None, int | None], bool] = {}
        for key in keys:
            if key in entries:
                polled.cached.append(key)
                continue
            claim = claims.get(key)
            if claim is None:
                polled.free.append(key)
                continue
            run_id, fence, host, pid, expired = claim
            if run_id == self.run_id:
                polled.mine[key] = fence
                continue
            gone = dead.get((host, pid))
            if gone is None:
                gone = dead[(host, pid)] = process_gone(host, pid)
            if expired:
                polled.expired[key] = (run_id, fence)
            elif gone:
                polled.dead[key] = (run_id, fence)
            else:
                polled.held += 1
        return polled

    def take_over(self, stale: dict[Key, tuple[str, int]], dead: bool = False) -> set[Key]:
        """Take over stale claims (compare-and-set on their run id and fence); the ones won.

        With ``dead`` the owner's process is known gone and the lease need not have expired."""
        groups: dict[tuple[str, int], list[Key]] = defaultdict(list)
        for key, owner in stale.items():
            groups[owner].append(key)
        won: set[Key] = set()
        for (run_id, fence), keys in groups.items():
            for chunk in chunks(keys, CHUNK):
                rows = self._run(
                    self.sql.take_over(len(chunk), self.lease, expired_only=not dead),
                    self.sql.take_over_params(
                        (self.run_id, self.host, self.pid), (run_id, fence), chunk
                    ),
                    "taking over claimed calls",
                )
                for t, a, new_fence in rows:
                    won.add((t, a))
                    self.held[(t, a)] = int(new_fence)
        return won

    def release_now(self, keys: Iterable[Key]) -> None:
        """Give up claims at once (outside the recorder's transaction)."""
        by_fence: dict[int, list[Key]] = defaultdict(list)
        for key in keys:
            by_fence[self.held.pop(key, 1)].append(key)
        for fence, group in by_fence.items():
            for chunk in chunks(group, CHUNK):
                self._run(
                    self.sql.release(len(chunk)),
                    self.sql.release_params(self.run_id, fence, chunk),
                    "releasing claimed calls",
                )

    def release_all(self) -> None:
        """Release every claim of the run (its end, also after an interruption)."""
        self.held.clear()
        self._run(
            f"DELETE FROM lf_claim WHERE run_id = {self.sql.mark} RETURNING task_hash",
            [self.run_id],
            "releasing the run's claims",
        )

    def close(self) -> None:
        if self._raw is not None:
            try:
                if self.dialect != "sqlite":
                    self._raw.driver_connection.autocommit = False
                self._raw.close()
            finally:
                self._raw = None

    # -- inside other transactions -----------------------------------------------------

    def extend(self, conn: Connection) -> None:
        """Extend every lease of the run (the heartbeat's transaction)."""
        if not self.held:
            return
        conn.exec_driver_sql(
            f"UPDATE lf_claim SET expires_at = {self.sql.later(self.lease)} "
            f"WHERE run_id = {self.sql.mark}",
            (self.run_id,),
        )

    def release(self, cursor: Any, keys: dict[Key, int]) -> set[Key]:
        """Delete the claims in ``keys`` (key -> fence) that are still this run's, in the
        caller's transaction; the keys that were (their cache entries may be written)."""
        by_fence: dict[int, list[Key]] = defaultdict(list)
        for key, fence in keys.items():
            by_fence[fence].append(key)
        owned: set[Key] = set()
        for fence, group in by_fence.items():
            for chunk in chunks(group, CHUNK):
                self.sql.execute(
                    cursor,
                    self.sql.release(len(chunk)),
                    self.sql.release_params(self.run_id, fence, chunk),
                )
                owned.update((t, a) for t, a in cursor.fetchall())
        lost = len(keys) - len(owned)
        if lost:
            log.debug("run %s lost %d claim(s): their cache entries are not written",
                      self.run_id, lost)  # fmt: skip
        return owned

    def forget(self, keys: dict[Key, int]) -> None:
        """``keys`` were released (their transaction committed)."""
        held = self.held
        for key, fence in keys.items():
            if held.get(key) == fence:
                del held[key]
