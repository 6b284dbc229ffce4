"""get_or_create: semantics, and safety when several processes race on the same keys."""

from __future__ import annotations

import multiprocessing
import queue
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column

from ledgerflow.db import Database, Helpers, Model, get_or_create
from ledgerflow.errors import UsageError

HERE = Path(__file__).parent
WORKERS = 4
KEYS = 150


def test_get_or_create_semantics(open_db: Callable[..., Database]) -> None:
    class ComputationResult(Model):
        id: Mapped[int] = mapped_column(primary_key=True)
        input_value: Mapped[int]
        multiplier: Mapped[int]
        result: Mapped[int]
        note: Mapped[str | None] = mapped_column(String(20))
        __table_args__ = (UniqueConstraint("input_value", "multiplier"),)

    db = open_db()
    key = {"input_value": 3, "multiplier": 2}
    with db.transaction() as session:
        row, created = get_or_create(session, ComputationResult, key, {"result": 6})
        assert created is True and row.result == 6 and row.id is not None
        first_id = row.id
    with db.transaction() as session:
        row, created = Helpers(session).get_or_create(
            ComputationResult, key, {"result": 999, "note": "ignored"}
        )
        assert created is False
        assert (row.id, row.result, row.note) == (first_id, 6, None)
        other, created = get_or_create(
            session, ComputationResult, {"input_value": 3, "multiplier": 5}, {"result": 15}
        )
        assert created is True and other.id != first_id
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ComputationResult)) == 2
        with pytest.raises(UsageError, match="filter_by"):
            get_or_create(session, ComputationResult, {}, {"result": 1})


def test_get_or_create_is_safe_across_processes(
    tmp_path: Path,
    database_entry: dict[str, Any],
    open_db: Callable[..., Database],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Processes get_or_create the same keys at once: one row and one ``created`` per key."""
    monkeypatch.syspath_prepend(str(HERE))
    import _race_worker

    token = _race_worker.define_token_model()
    db = open_db()
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(WORKERS)
    results = spawn.Queue()
    workers = [
        spawn.Process(
            target=_race_worker.race,
            args=(database_entry, str(tmp_path), KEYS, barrier, results),
        )
        for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    reports = []
    try:
        for _ in workers:
            reports.append(results.get(timeout=300))
    except queue.Empty:
        pytest.fail("a get_or_create worker did not report within 300 s")
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    errors = [detail for status, detail in reports if status == "error"]
    assert errors == []
    created = Counter(key for _, keys in reports for key in keys)
    assert sorted(created) == list(range(KEYS))
    assert set(created.values()) == {1}
    assert all(worker.exitcode == 0 for worker in workers)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(token)) == KEYS
