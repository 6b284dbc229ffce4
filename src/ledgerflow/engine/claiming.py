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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledgerflow.engine.node import Node
    from ledgerflow.ledger.claims import Claims, Key

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
