"""Integrity without keys: rows changed behind ledgerflow's back are detected, never
returned, and recomputed with a note; pickles load only from trusted writers."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import insert, text, update

import ledgerflow
from ledgerflow import task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.hashing import combine, hash_value
from ledgerflow.ledger import tables
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.values import digest, encode

CALLS: list[Any] = []
MARKER = Path("pwned-by-a-pickle")


@task
def square(n: int) -> int:
    CALLS.append(n)
    return n * n


@task
def pair(n: int) -> tuple[int, bytes]:
    CALLS.append(n)
    return (n, b"x" * n)


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


@task
def point(x: int) -> Point:
    CALLS.append(x)
    return Point(x)


class Exploit:
    """Unpickling it writes the marker file."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (MARKER.absolute(), "unpickled"))


def with_config(settings: Settings, **sections: Any) -> Settings:
    assert settings.path is not None
    data = yaml.safe_load(settings.path.read_text())
    data.update(sections)
    settings.path.write_text(yaml.safe_dump(data))
    return load_settings(settings.path)


def tamper(settings: Settings, statement: Any, params: dict[str, Any] | None = None) -> int:
    """Change the ledger behind ledgerflow's back (as the admin: whatever the user role may
    do, a row can always be changed by someone who owns the database or its file)."""
    database = Database(settings, role="admin")
    try:
        with database.engine().begin() as conn:
            return int(conn.execute(statement, params or {}).rowcount)
    finally:
        database.dispose()


def entry_of(ledger: LedgerRows, task_name: str, value: Any) -> dict[str, Any]:
    digest_ = hash_value(value)
    (row,) = list(ledger.rows("lf_cache_entry", value_hash=digest_))
    return row


def test_an_entry_pointed_at_another_value_is_never_returned(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    CALLS.clear()
    assert ledgerflow.run([square(3), square(4)], settings=ledger_settings) == [9, 16]
    three = entry_of(ledger, "square", 9)
    poisoned = tamper(
        ledger_settings,
        update(tables.cache_entry)
        .where(tables.cache_entry.c.args_hash == three["args_hash"])
        .values(value_hash=hash_value(16)),
    )
    assert poisoned == 1
    explanation = ledgerflow.explain(square(3), settings=ledger_settings)
    assert explanation.status == "run"
    assert explanation.reasons == [
        "its cache entry does not match the call it claims (changed outside ledgerflow)"
    ]
    result = ledgerflow.execute([square(3), square(4)], settings=ledger_settings)
    assert result.value == [9, 16] and result.counts["done"] == 1 and result.counts["cached"] == 1
    assert sorted(CALLS) == [3, 3, 4]
    (note,) = result.notes
    assert "square(n=3): cached result not used, its cache entry does not match" in note
    assert note.endswith("computing it again")


def test_an_entry_with_a_made_up_call_is_never_returned(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    CALLS.clear()
    ledgerflow.run([square(3), square(4)], settings=ledger_settings)
    three = entry_of(ledger, "square", 9)
    forged_call = combine(three["task_hash"], three["args_hash"], hash_value(16))
    tamper(
        ledger_settings,
        update(tables.cache_entry)
        .where(tables.cache_entry.c.args_hash == three["args_hash"])
        .values(value_hash=hash_value(16), call_hash=forged_call),
    )
    explanation = ledgerflow.explain(square(3), settings=ledger_settings)
    assert explanation.status == "run"
    assert "call record is missing or disagrees" in explanation.reasons[0]
    result = ledgerflow.execute(square(3), settings=ledger_settings)
    assert result.value == 9 and result.counts["done"] == 1 and len(result.notes) == 1


def test_plain_bytes_that_do_not_hash_to_their_address_are_never_returned(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    CALLS.clear()
    assert ledgerflow.run(pair(2), settings=ledger_settings) == (2, b"xx")
    (row,) = ledger.rows("lf_value", hash=hash_value((2, b"xx")))
    assert row["format"] == "tjson" and row["writer"]
    forged = encode((2, b"yy"))
    tamper(
        ledger_settings,
        update(tables.value)
        .where(tables.value.c.hash == row["hash"])
        .values(inline=forged.data, signature=digest(forged.data)),  # a consistent digest too
    )
    explanation = ledgerflow.explain(pair(2), settings=ledger_settings)
    assert explanation.reasons == ["its stored bytes do not hash to its content address"]
    result = ledgerflow.execute(pair(2), settings=ledger_settings)
    assert result.value == (2, b"xx") and CALLS == [2, 2]
    assert "do not hash to its content address" in result.notes[0]


def test_a_changed_entry_among_prefetched_ones_is_caught(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    CALLS.clear()
    calls = [square(i) for i in range(50)]
    assert ledgerflow.run(calls, settings=ledger_settings) == [i * i for i in range(50)]
    entry = entry_of(ledger, "square", 49 * 49)
    tamper(
        ledger_settings,
        update(tables.cache_entry)
        .where(tables.cache_entry.c.args_hash == entry["args_hash"])
        .values(value_hash=hash_value(0)),
    )
    value = entry_of(ledger, "square", 48 * 48)
    tamper(
        ledger_settings,
        update(tables.value).where(tables.value.c.hash == value["value_hash"]).values(
            inline=b"5"
        ),
    )
    CALLS.clear()
    chain = ledgerflow.execute([square(i) for i in range(50)], settings=ledger_settings)
    assert chain.value == [i * i for i in range(50)]
    assert sorted(CALLS) == [48, 49] and len(chain.notes) == 2


def _forge_pickled_result(settings: Settings, ledger: LedgerRows, writer: str) -> str:
    """As the user role: a value row holding an exploit, claiming ``writer``, and a
    consistent cache entry and call pointing ``point(7)`` at it."""
    ledgerflow.run(point(1), settings=settings)  # records the task definition
    task_hash = point.hash
    args_hash = _args_hash(point(7))
    data = pickle.dumps(Exploit())
    value_hash = hash_value(("forged", 7))
    call_hash = combine(task_hash, args_hash, value_hash)
    database = Database(settings)
    try:
        with database.engine().begin() as conn:
            conn.execute(insert(tables.value).values(
                hash=value_hash, type_name="x.Point", format="pickle", preview="Point",
                size=len(data), inline=data, signature=digest(data), writer=writer,
                created_at=ledgerflow_now(),
            ))  # fmt: skip
            conn.execute(insert(tables.call).values(
                hash=call_hash, task_hash=task_hash, args_hash=args_hash,
                value_hash=value_hash, created_at=ledgerflow_now(),
            ))  # fmt: skip
            conn.execute(insert(tables.cache_entry).values(
                task_hash=task_hash, args_hash=args_hash, call_hash=call_hash,
                value_hash=value_hash, run_id=None, created_at=ledgerflow_now(), writer=writer,
            ))  # fmt: skip
    finally:
        database.dispose()
    return value_hash


def _args_hash(call: Any) -> str:
    from ledgerflow.hashing import arguments_hash

    return arguments_hash(list(call.task.param_names), [hash_value(v) for v in call.values])


def ledgerflow_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_a_pickle_from_an_untrusted_writer_is_never_unpickled(
    ledger_settings: Settings, ledger: LedgerRows, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    admin = ledger_settings.default.admin.username if ledger_settings.default.admin else "admin"
    value_hash = _forge_pickled_result(ledger_settings, ledger, writer=admin)
    (row,) = ledger.rows("lf_value", hash=value_hash)
    if ledger_settings.default.dialect == "postgresql":
        assert row["writer"] == ledger_settings.writer  # the server wrote who really did it
    settings = with_config(ledger_settings, cache={"trust": ["someone-else"]})
    CALLS.clear()
    explanation = ledgerflow.explain(point(7), settings=settings)
    assert explanation.status == "run" and "who is not in cache.trust" in explanation.reasons[0]
    result = ledgerflow.execute(point(7), settings=settings)
    assert result.value == Point(7) and CALLS == [7]
    (note,) = result.notes
    assert "point(x=7): cached result not used, it was pickled by " in note
    assert not (tmp_path / MARKER).exists() and not MARKER.absolute().exists()


def test_own_pickles_load_and_cache_trust_can_refuse_them(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    CALLS.clear()
    assert ledgerflow.run(point(2), settings=ledger_settings) == Point(2)
    (row,) = ledger.rows("lf_value", hash=hash_value(Point(2)))
    assert row["format"] == "pickle" and row["writer"] == ledger_settings.writer
    assert ledgerflow.execute(point(2), settings=ledger_settings).counts["cached"] == 1
    refusing = with_config(ledger_settings, cache={"trust": []})
    result = ledgerflow.execute(point(2), settings=refusing)
    assert result.counts["done"] == 1 and CALLS == [2, 2] and len(result.notes) == 1


@pytest.mark.parametrize("database_dialect", ["postgresql"])
def test_the_user_role_cannot_forge_the_writer(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    db = ledger_settings.default
    assert db.admin is not None and db.user is not None
    database = Database(ledger_settings)
    try:
        with database.engine().begin() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == db.user.username
            conn.execute(insert(tables.value).values(
                hash="f" * 40, type_name="t", format="json", inline=b"1", size=1,
                created_at=ledgerflow_now(), writer=db.admin.username,
            ))  # fmt: skip
        try:  # an update may be refused to this role; if not, it keeps the writer
            with database.engine().begin() as conn:
                conn.execute(
                    update(tables.value).where(tables.value.c.hash == "f" * 40).values(
                        writer=db.admin.username
                    )
                )
        except Exception as exc:
            assert "permission" in str(exc) or "policy" in str(exc)
    finally:
        database.dispose()
    (row,) = ledger.rows("lf_value", hash="f" * 40)
    assert row["writer"] == db.user.username != db.admin.username
