"""The scheduler's side of claims: which uncached calls this run computes, which it waits for.

Calls found uncached are claimed in one statement per dispatch batch
(:class:`ledgerflow.ledger.claims.Claims`). The ones another run holds are *parked*: the
run goes on with its other work and polls them every ``cache.poll`` seconds, one query for
all of them. A parked call whose cache entry appeared is a cache hit; one whose claim was
released without an entry (its owner failed or stopped) is claimed again; one whose lease
expired, or whose owner's process is gone, is taken over. With ``cache.wait: false`` (or
``--no-wait``) a call held by another run is computed anyway.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ledgerflow.engine import node as st

if TYPE_CHECKING:
    from ledgerflow.engine.cache import CacheHit, CacheReader
    from ledgerflow.engine.executor import Executor
    from ledgerflow.engine.node import Node
    from ledgerflow.engine.written import WrittenRows
    from ledgerflow.ledger.claims import Claims, Key
    from ledgerflow.ledger.recorder import Recorder

#: The first poll of newly parked calls comes this soon (their owner may be done already).
FIRST_POLL = 0.1
#: A run claims about this many seconds of work ahead of what it computes (by the rate at
#: which its calls finish), so that runs wanting the same calls share them out...
CLAIM_AHEAD = 0.5
#: ... at least this many calls (and the executor's workers twice over) ...
MIN_WINDOW = 8
#: ... and at most this many (one statement's worth).
MAX_WINDOW = 1000


class Parking:
    """Claims calls for one run, and keeps the calls other runs hold until they are settled."""

    def __init__(self, claims: Claims, *, wait: bool = True) -> None:
        self.claims = claims
        self.wait = wait
        self.parked: dict[Key, Node] = {}
        #: uncached calls not claimed yet: claimed a window at a time (:meth:`window`)
        self.unclaimed: deque[Node] = deque()
        self.next_poll = 0.0
        self.polls = 0
        self._finished = 0
        self._since: float | None = None

    def fence(self, node: Node) -> int | None:
        """The fence of ``node``'s claim when this run holds it, else None."""
        key = node.key
        return self.claims.held.get(key) if key is not None else None

    def finished(self) -> None:
        """A call this run computed has finished (the rate sets the claim window)."""
        self._finished += 1

    def window(self, workers: int) -> int:
        """How many calls this run keeps claimed ahead: about :data:`CLAIM_AHEAD` seconds of
        its own throughput, so that slow calls are shared out between the runs that want
        them and quick ones cost one statement per up to a thousand calls."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        low = max(MIN_WINDOW, 2 * workers)
        elapsed = now - self._since
        if self._finished == 0 or elapsed <= 0:
            return low
        ahead = math.ceil(self._finished / elapsed * CLAIM_AHEAD)
        return max(low, min(MAX_WINDOW, ahead))

    def sort(self, nodes: Sequence[Node]) -> tuple[list[Node], list[Node]]:
        """Claim ``nodes`` (one statement per chunk): (the ones to compute now, the ones
        parked because another run holds them)."""
        won = self.claims.claim([n.key for n in nodes])  # type: ignore[misc]
        if len(won) == len(nodes) or not self.wait:
            return list(nodes), []
        compute = []
        parked = []
        for node in nodes:
            if node.key in won:
                compute.append(node)
            else:
                self._park(node)
                parked.append(node)
        return compute, parked

    def _park(self, node: Node) -> None:
        assert node.key is not None
        self.parked[node.key] = node
        soon = time.monotonic() + min(FIRST_POLL, self.claims.poll_every)
        if self.next_poll == 0.0 or soon < self.next_poll:
            self.next_poll = soon

    def due(self) -> bool:
        return bool(self.parked) and time.monotonic() >= self.next_poll

    def seconds_to_poll(self) -> float:
        return max(0.0, self.next_poll - time.monotonic())

    def poll(self) -> tuple[list[Node], list[Node]]:
        """Look at every parked call once: (cache entries to use, calls to compute now)."""
        self.polls += 1
        self.next_poll = time.monotonic() + self.claims.poll_every
        claims = self.claims
        polled = claims.poll(list(self.parked))
        cached = [self.parked.pop(key) for key in polled.cached]
        won: set[Key] = set(polled.mine)
        claims.held.update(polled.mine)
        if polled.free:
            won |= claims.claim(polled.free)
        if polled.expired:
            won |= claims.take_over(polled.expired)
        if polled.dead:
            won |= claims.take_over(polled.dead, dead=True)
        compute = [self.parked.pop(key) for key in won if key in self.parked]
        return cached, compute


class Claiming:
    """The scheduler's claim steps: a mixin of :class:`ledgerflow.engine.scheduler.Scheduler`,
    which provides the queues, the cache reader and the node phase helpers they use."""

    parking: Parking | None
    executor: Executor
    recorder: Recorder
    cache: CacheReader | None
    written: WrittenRows | None
    runnable: Any
    running: Any
    #: seconds the loop waits at most before its housekeeping turn
    tick: float

    def _queue(self, node: Node) -> None:
        raise NotImplementedError

    def _set_phase(self, node: Node, phase: str) -> None:
        raise NotImplementedError

    def _use_hit(self, node: Node, hit: CacheHit) -> bool:
        raise NotImplementedError

    def _settle(self) -> None:
        raise NotImplementedError

    def _housekeeping(self) -> None:
        raise NotImplementedError

    def _compute(self, nodes: list[Node]) -> None:
        """Queue uncached calls, once this run claimed them (a window at a time)."""
        if self.parking is None:
            for node in nodes:
                self._queue(node)
            return
        self.parking.unclaimed.extend(nodes)
        self._claim_more()

    def _claim_more(self) -> None:
        """Claim the next calls (one statement) when what this run holds runs low; park
        those another run holds."""
        parking = self.parking
        assert parking is not None
        unclaimed = parking.unclaimed
        want = parking.window(self.executor.workers) - len(self.runnable) - len(self.running)
        if want <= 0 or not unclaimed:
            return
        batch: list[Node] = []
        while unclaimed and len(batch) < want:
            node = unclaimed.popleft()
            if node.phase is st.READY:  # not interrupted meanwhile
                batch.append(node)
        if not batch:
            return
        compute, parked = parking.sort(batch)
        for node in parked:
            self._set_phase(node, st.PARKED)
        for node in compute:
            self._queue(node)

    def _poll_parked(self) -> None:
        assert self.parking is not None
        cached, compute = self.parking.poll()
        if cached and self.cache is not None:
            hits = self.cache.lookup([n.key for n in cached], fresh=True)  # type: ignore[misc]
            written = self.written
            gone = written.check(hits.values(), fresh=True) if written is not None else {}
            for node in cached:
                hit = hits.get(node.key)  # type: ignore[arg-type]
                if hit is not None and hit.call_hash in gone:
                    node.miss_reason, hit = gone[hit.call_hash], None
                if hit is None or not self._use_hit(node, hit):
                    compute.append(node)  # an entry that cannot be used: computed here
        for node in compute:
            self._queue(node)
        self._settle()

    def _wait_parked(self) -> None:
        """Nothing else to do: claim more, or wait for the next poll of the parked calls."""
        assert self.parking is not None
        if self.parking.unclaimed:
            self._claim_more()
            if self.runnable:
                return
        self._housekeeping()
        if self.parking.parked and not self.parking.due():
            time.sleep(min(self.parking.seconds_to_poll(), self.tick))

    def _release_claim(self, node: Node) -> None:
        """``node`` ended: its claim, if this run holds it, goes with the next flush."""
        if self.parking is not None and node.key is not None:
            fence = self.parking.fence(node)
            if fence is not None:
                self.recorder.release_claim(node.key, fence)
                self.parking.finished()
