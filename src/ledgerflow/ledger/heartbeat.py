"""Keeping a run's heartbeat, and finding runs whose process died.

A running run's ``heartbeat_at`` is refreshed every few seconds by a background thread.
Any command that opens the ledger calls :func:`reap_stale_runs`: a run still ``running``
whose heartbeat is older than the threshold (or whose process, on this host, is gone) is
marked ``interrupted``, with its pending and running task runs.

On PostgreSQL the heartbeat is the database's clock, and so is the threshold: the user
role may update only the runs it started, so anyone's dead runs are marked by
``lf_reap_stale_runs``, a function that runs with the admin's rights and never marks a run
that beat within the last ``REAP_FLOOR_SECONDS``. A run whose process is gone (seen on
this host) is marked directly, when it is the role's own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ledgerflow.db.times import utcnow
from ledgerflow.ledger.claims import process_gone
from ledgerflow.ledger.privileges import REAP_FLOOR_SECONDS, REAP_FUNCTION
from ledgerflow.ledger.status import INTERRUPTED, RUNNING, UNFINISHED

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from ledgerflow.ledger.claims import Claims

#: Seconds between two heartbeats of a running run.
HEARTBEAT_INTERVAL = float(os.environ.get("LEDGERFLOW_HEARTBEAT_INTERVAL", "5"))
#: A running run whose heartbeat is older than this many seconds is considered dead.
STALE_AFTER = float(os.environ.get("LEDGERFLOW_STALE_AFTER", "60"))


class Heartbeat:
    """A daemon thread that refreshes ``lf_run.heartbeat_at`` until stopped, and extends the
    leases of the run's claims in the same transaction (beating at least three times per
    lease)."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        interval: float = HEARTBEAT_INTERVAL,
        on_beat: Callable[[], None] | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.claims = claims
        self.interval = interval if claims is None else min(interval, claims.lease / 3)
        self.on_beat = on_beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ledgerflow-heartbeat", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def beat(self) -> None:
        from sqlalchemy import func, update

        from ledgerflow.ledger.tables import run as runs

        server_clock = self.engine.dialect.name == "postgresql"
        stmt = (
            update(runs)
            .where(runs.c.id == self.run_id, runs.c.status == RUNNING)
            .values(heartbeat_at=func.now() if server_clock else utcnow())
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            if self.claims is not None:
                self.claims.extend(conn)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                if self.on_beat is not None:
                    self.on_beat()
            except Exception:  # a missed beat is retried; the run must not die of it
                self.errors += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(1.0, self.interval))


#: The query :func:`dead_runs` reads its rows from (also run over a bare driver connection).
RUNNING_RUNS_SQL = f"SELECT id, heartbeat_at, started_at, host, pid FROM lf_run WHERE status = '{RUNNING}'"


def dead_runs(
    rows: Iterable[tuple[str, datetime | None, datetime | None, str | None, int | None]],
    *,
    now: datetime | None = None,
    stale_after: float | None = None,
) -> list[str]:
    """The ids of the ``running`` runs (rows of id, heartbeat, start, host, pid; naive times
    are UTC) whose heartbeat is too old or whose process on this host is gone."""
    cutoff = (now or utcnow()) - timedelta(seconds=STALE_AFTER if stale_after is None else stale_after)
    dead = []
    for run_id, heartbeat_at, started_at, host, pid in rows:
        last = heartbeat_at or started_at
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if (last is not None and last < cutoff) or process_gone(host, pid):
            dead.append(run_id)
    return dead


def reap_stale_runs(
    engine: Engine,
    *,
    stale_after: float | None = None,
    now: datetime | None = None,
    writer: Engine | None = None,
) -> list[str]:
    """Mark dead ``running`` runs ``interrupted`` (and their unfinished task runs); their ids.

    ``engine`` finds them; ``writer`` (default: ``engine``) marks them, so a reader looks
    with a read-only engine and writes only when there is something to mark. ``now`` is
    the client's clock (SQLite only: PostgreSQL uses its own).
    """
    from sqlalchemy import select

    from ledgerflow.ledger.tables import run as runs

    limit = STALE_AFTER if stale_after is None else stale_after
    if engine.dialect.name == "postgresql":
        return _reap_on_server(engine, writer or engine, limit)
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.id, runs.c.heartbeat_at, runs.c.started_at, runs.c.host, runs.c.pid)
            .where(runs.c.status == RUNNING)
        ).all()
    dead = dead_runs(rows, now=now, stale_after=limit)
    if not dead:
        return []
    with (writer or engine).begin() as conn:
        _mark(conn, dead, now)
    return dead


_SILENT = (
    "SELECT id, host, pid, COALESCE(heartbeat_at, started_at) < now() - make_interval(secs => :limit) "
    f"FROM lf_run WHERE status = '{RUNNING}'"
)


def _reap_on_server(engine: Engine, writer: Engine, limit: float) -> list[str]:
    """PostgreSQL: stale heartbeats by the server's clock, marked by the admin's function;
    runs whose process is gone on this host, marked directly (only the role's own)."""
    from sqlalchemy import Float, bindparam, text

    limit = max(float(limit), REAP_FLOOR_SECONDS)
    with engine.connect() as conn:
        silent = text(_SILENT).bindparams(bindparam("limit", type_=Float()))
        rows = conn.execute(silent, {"limit": limit}).all()
    stale = any(row[3] for row in rows)
    gone = [run_id for run_id, host, pid, old in rows if not old and process_gone(host, pid)]
    if not stale and not gone:
        return []
    dead: list[str] = []
    with writer.begin() as conn:
        if stale:
            reap = text(f"SELECT * FROM {REAP_FUNCTION}(:limit)")
            dead += conn.execute(reap.bindparams(bindparam("limit", type_=Float())), {"limit": limit}).scalars()
        if gone:
            dead += _mark(conn, gone, None)
    return sorted(dead)


def _mark(conn: Connection, run_ids: list[str], now: datetime | None) -> list[str]:
    """Mark ``run_ids`` (those still running) and their unfinished task runs interrupted;
    the ids of the runs marked. ``now=None``: the database's clock."""
    from sqlalchemy import func, update

    from ledgerflow.ledger.tables import run as runs
    from ledgerflow.ledger.tables import task_run as task_runs

    when = func.now() if now is None else now
    conn.execute(
        update(task_runs)
        .where(task_runs.c.run_id.in_(run_ids), task_runs.c.status.in_(sorted(UNFINISHED)))
        .values(status=INTERRUPTED, ended_at=when)
    )
    marked = conn.execute(
        update(runs)
        .where(runs.c.id.in_(run_ids), runs.c.status == RUNNING)
        .values(status=INTERRUPTED, ended_at=when)
        .returning(runs.c.id)
    )
    return list(marked.scalars())
