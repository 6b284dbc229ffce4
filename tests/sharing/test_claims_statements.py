"""The claim statements on a real ledger (SQLite, then PostgreSQL): batching, one winner,
expiry by the database's clock, fenced takeover and release."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.ledger.claims import CHUNK, Claims

KEYS = [("a" * 40, f"{i:040x}") for i in range(1000)]


@pytest.fixture
def engine(ledger_settings: Settings) -> Iterator[object]:
    database = Database(ledger_settings)
    try:
        yield database.engine()
    finally:
        database.dispose()


def _claims(engine: object, run: str, **options: object) -> Claims:
    return Claims(engine, run * 32, host="host-" + run, pid=1, **options)  # type: ignore[arg-type]


def test_one_statement_per_chunk_and_one_winner(engine: object) -> None:
    first, second = _claims(engine, "a"), _claims(engine, "b")
    try:
        assert first.claim(KEYS) == set(KEYS)
        assert second.claim(KEYS) == set()
        chunks = -(-len(KEYS) // CHUNK)
        # not per call: one insert per chunk (PostgreSQL: and a second look at the cache for
        # the calls won, see Claims.claim)
        postgres = engine.dialect.name == "postgresql"  # type: ignore[attr-defined]
        assert first.statements == chunks * (2 if postgres else 1)
        assert second.statements == chunks
        polled = second.poll(KEYS)
        assert polled.held == len(KEYS) and not (polled.expired or polled.free or polled.cached)
        assert second.statements == 2 * chunks  # one query per chunk of parked calls
    finally:
        first.close()
        second.close()


def test_an_expired_lease_is_taken_over_once_and_fences_the_old_owner(engine: object) -> None:
    owner = _claims(engine, "a", lease=0.5)
    rivals = [_claims(engine, "b"), _claims(engine, "c")]
    key = KEYS[:1]
    try:
        assert owner.claim(key) == set(key)
        assert rivals[0].poll(key).expired == {}  # live: by the database's clock
        time.sleep(0.8)
        stale = rivals[0].poll(key).expired
        assert stale == {key[0]: ("a" * 32, 1)}
        won = [rival.take_over(stale) for rival in rivals]
        assert won == [set(key), set()]  # compare-and-set: one winner
        assert rivals[0].held == {key[0]: 2}

        raw = engine.raw_connection()  # type: ignore[attr-defined]
        try:
            cursor = raw.cursor()
            assert owner.release(cursor, {key[0]: 1}) == set()  # the stale owner owns nothing
            assert rivals[0].release(cursor, {key[0]: 2}) == set(key)
            raw.commit()
        finally:
            raw.close()
        assert rivals[1].poll(key).free == key  # released: anyone may claim it again
    finally:
        for claims in (owner, *rivals):
            claims.close()


def test_leases_follow_the_database_clock_not_the_hosts(
    engine: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose host clock is an hour behind claims a call: its lease is not expired for
    the others; a rival an hour ahead cannot take it over before it expires."""
    import datetime as real_datetime

    from ledgerflow.db import times

    def skewed(hours: float) -> None:
        offset = real_datetime.timedelta(hours=hours)
        monkeypatch.setattr(times, "utcnow", lambda: real_datetime.datetime.now(real_datetime.UTC) + offset)
        monkeypatch.setattr(time, "time", lambda: time.monotonic() + 1.8e9 + offset.total_seconds())

    owner, rival = _claims(engine, "a", lease=1.0), _claims(engine, "b")
    key = KEYS[:1]
    try:
        skewed(-1)
        assert owner.claim(key) == set(key)
        skewed(+1)
        assert rival.poll(key).expired == {}
        assert rival.take_over({key[0]: ("a" * 32, 1)}) == set()  # live: the CAS refuses
        time.sleep(1.3)
        assert rival.take_over(rival.poll(key).expired) == set(key)
    finally:
        owner.close()
        rival.close()
