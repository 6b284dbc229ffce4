"""Anyone's dead run is marked ``interrupted`` by the user role, by the database's clock
(real PostgreSQL server), although the user role may not update another role's runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.ledger.heartbeat import reap_stale_runs

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_dialect", ["postgresql"])]

OLD, FRESH = "a" * 32, "b" * 32


def _statuses(database: Database) -> dict[str, tuple[str, str]]:
    with database.engine().connect() as conn:
        rows = conn.execute(text(
            "SELECT r.id, r.status, t.status FROM lf_run r JOIN lf_task_run t ON t.run_id = r.id"
        ))
        return {row[0]: (row[1], row[2]) for row in rows}


def test_the_user_role_marks_another_roles_dead_run_by_the_database_clock(
    ledger_settings: Settings,
) -> None:
    admin, user = Database(ledger_settings, role="admin"), Database(ledger_settings)
    try:
        with admin.engine().begin() as conn:  # the admin's runs, beating by the server's clock
            conn.execute(text(
                "INSERT INTO lf_task_def (hash, name, namespace, created_at) VALUES (:t, 'x', '', now())"
            ), {"t": "t" * 40})
            for run_id, seconds in ((OLD, 300), (FRESH, 5)):
                conn.execute(text(
                    "INSERT INTO lf_run (id, status, entry_task, started_at, heartbeat_at, host, pid) "
                    "VALUES (:id, 'running', 'x', now() - make_interval(secs => :s), "
                    "now() - make_interval(secs => :s), 'elsewhere', 1)"
                ), {"id": run_id, "s": seconds})
                conn.execute(text(
                    "INSERT INTO lf_task_run (id, run_id, task_hash, task_name, args_hash, status, attempt) "
                    "VALUES (:tr, :id, :t, 'x', '', 'running', 1)"
                ), {"tr": run_id[:30] + "tr", "id": run_id, "t": "t" * 40})
        with user.engine().begin() as conn:  # the user role may not do it itself
            changed = conn.execute(text("UPDATE lf_run SET status = 'interrupted' WHERE id = :id"),
                                   {"id": OLD})
            assert changed.rowcount == 0

        # a client clock far ahead changes nothing: the server's clock decides
        far = datetime.now(UTC) + timedelta(days=1)
        assert reap_stale_runs(user.engine(), stale_after=60, now=far) == [OLD]
        assert _statuses(admin) == {OLD: ("interrupted", "interrupted"), FRESH: ("running", "running")}
        # a limit below the floor (10 s) does not reach a run that beat 5 s ago
        assert reap_stale_runs(user.engine(), stale_after=0) == []
        assert _statuses(admin)[FRESH] == ("running", "running")
    finally:
        admin.dispose()
        user.dispose()


def test_the_heartbeat_is_the_database_clock(
    ledger_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledgerflow.ledger import heartbeat

    skewed = datetime.now(UTC) + timedelta(days=1)  # this host's clock runs a day ahead
    monkeypatch.setattr(heartbeat, "utcnow", lambda: skewed)
    user = Database(ledger_settings)
    try:
        with user.engine().begin() as conn:
            conn.execute(text(
                "INSERT INTO lf_run (id, status, entry_task, started_at) "
                "VALUES (:id, 'running', 'x', now() - interval '1 hour')"
            ), {"id": FRESH})
        heartbeat.Heartbeat(user.engine(), FRESH).beat()
        with user.engine().connect() as conn:
            lag = conn.execute(text(
                "SELECT extract(epoch FROM now() - heartbeat_at) FROM lf_run WHERE id = :id"
            ), {"id": FRESH}).scalar_one()
        assert 0 <= float(lag) < 5
    finally:
        user.dispose()
