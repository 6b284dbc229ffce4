"""bulk_insert, upsert, update, find and paginate on both dialects."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Mapped, mapped_column

from ledgerflow.db import Database, Helpers, Model, bulk_insert, find, paginate, update, upsert
from ledgerflow.errors import UsageError

T0 = datetime(2024, 3, 1, 12, 0, 0)


def define_reading() -> type[Model]:
    class Reading(Model):
        id: Mapped[int] = mapped_column(primary_key=True)
        sensor: Mapped[str] = mapped_column(String(40))
        seq: Mapped[int]
        value: Mapped[float]
        taken_at: Mapped[datetime] = mapped_column(DateTime())
        valid: Mapped[bool]
        unit: Mapped[str] = mapped_column(String(10), default="kelvin")
        __table_args__ = (UniqueConstraint("sensor", "seq"),)

    return Reading


def readings(n: int, sensor: str = "s1") -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "sensor": sensor,
            "seq": i,
            "value": i * 0.5,
            "taken_at": T0 + timedelta(seconds=i),
            "valid": i % 3 != 0,
        }


@pytest.fixture
def reading_db(open_db: Callable[..., Database]) -> tuple[type[Model], Database]:
    reading = define_reading()
    return reading, open_db()


def test_bulk_insert_from_a_generator(reading_db: tuple[type[Any], Database]) -> None:
    reading, db = reading_db
    with db.transaction() as session:
        assert bulk_insert(session, reading, readings(25_000), batch_size=7_000) == 25_000
        assert Helpers(session).bulk_insert(reading, readings(3, sensor="s2")) == 3
    with db.session() as session:
        count, total = session.execute(select(func.count(), func.sum(reading.seq))).one()
        assert (count, total) == (25_003, sum(range(25_000)) + 3)
        row = session.scalars(select(reading).filter_by(sensor="s1", seq=24_998)).one()
        assert row.value == pytest.approx(12_499.0)
        assert row.taken_at == T0 + timedelta(seconds=24_998)
        assert row.valid is True and row.unit == "kelvin"
        small = session.scalars(select(reading).filter_by(sensor="s2", seq=0)).one()
        assert small.valid is False and small.unit == "kelvin" and small.taken_at == T0
        assert session.scalar(select(func.count()).where(reading.valid.is_(False))) == 8_335
        # Stored exactly as the ORM stores dates, so comparisons in SQL match.
        at = T0 + timedelta(seconds=17)
        assert session.scalars(select(reading.seq).where(reading.taken_at == at)).all() == [17]


def test_bulk_insert_rejects_an_unknown_column(reading_db: tuple[type[Any], Database]) -> None:
    reading, db = reading_db
    rows = [{**row, "colour": "red"} for row in readings(2)]
    with pytest.raises(UsageError, match="unknown column 'colour'"), db.transaction() as session:
        bulk_insert(session, reading, rows)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(reading)) == 0


@pytest.mark.parametrize("rows", [10, 1_000])
def test_bulk_insert_raises_sqlalchemy_integrity_error(
    reading_db: tuple[type[Any], Database], rows: int
) -> None:
    """Every path (executemany, COPY, Core) reports a constraint violation the same way."""
    reading, db = reading_db
    duplicated = [*readings(rows), {**next(readings(1)), "value": -1.0}]
    with pytest.raises(sa_exc.IntegrityError), db.transaction() as session:
        bulk_insert(session, reading, duplicated)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(reading)) == 0


def _size_of_list(rows: int) -> int:
    """Bytes a list of ``rows`` input rows would take (measured on a tenth, scaled up)."""
    tracemalloc.start()
    try:
        sample = list(narrow_rows(rows // 10))
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del sample
    return size * 10


def narrow_rows(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        yield {"sensor": f"sensor-{i % 97}", "seq": i, "value": i / 7, "taken_at": T0, "valid": True}


def test_bulk_insert_memory_follows_the_batch(reading_db: tuple[type[Any], Database]) -> None:
    reading, db = reading_db
    rows = 200_000
    as_list = _size_of_list(rows)
    with db.transaction() as session:
        bulk_insert(session, reading, narrow_rows(10, start=-10))  # warm up: plans, prepared statements
        tracemalloc.start()
        try:
            inserted = bulk_insert(session, reading, narrow_rows(rows), batch_size=5_000)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert inserted == rows
    assert peak < as_list / 8, f"peak {peak:,} bytes vs {as_list:,} for the rows as a list"


def test_upsert_inserts_then_updates(reading_db: tuple[type[Any], Database]) -> None:
    reading, db = reading_db
    with db.transaction() as session:
        assert upsert(session, reading, readings(3), on=["sensor", "seq"]) == 3
    changed = [
        {"sensor": "s1", "seq": 1, "value": 100.0, "taken_at": T0, "valid": False},
        {"sensor": "s1", "seq": 7, "value": 7.0, "taken_at": T0, "valid": True},
    ]
    with db.transaction() as session:
        assert Helpers(session).upsert(reading, changed, on=["sensor", "seq"]) == 2
        only_value = [{"sensor": "s1", "seq": 2, "value": -2.0, "taken_at": T0, "valid": False}]
        upsert(session, reading, only_value, on=["sensor", "seq"], update=["value"])
    with db.session() as session:
        rows = {r.seq: r for r in session.scalars(select(reading))}
        assert sorted(rows) == [0, 1, 2, 7]
        assert (rows[1].value, rows[1].valid, rows[1].taken_at) == (100.0, False, T0)
        assert (rows[2].value, rows[2].valid) == (-2.0, True)  # only `value` was updated
        assert rows[0].value == 0.0
        with pytest.raises(UsageError, match="on="):
            upsert(session, reading, changed, on=[])


def test_update_find_and_paginate(reading_db: tuple[type[Any], Database]) -> None:
    reading, db = reading_db
    with db.transaction() as session:
        bulk_insert(session, reading, readings(25))
        bulk_insert(session, reading, readings(4, sensor="s2"))
    with db.transaction() as session:
        row = find(session, reading, sensor="s2", seq=3)[0]
        assert update(session, row, {"value": 42.0, "valid": False}) is row
        with pytest.raises(UsageError, match="no attribute 'colour'"):
            update(session, row, {"colour": "red"})
    with db.session() as session:
        helpers = Helpers(session)
        assert [(r.value, r.valid) for r in helpers.find(reading, sensor="s2", seq=3)] == [
            (42.0, False)
        ]
        assert len(find(session, reading, sensor="s2")) == 4
        assert len(find(session, reading)) == 29
        assert find(session, reading, sensor="nobody") == []

        query = select(reading).filter_by(sensor="s1").order_by(reading.seq)
        last = paginate(session, query, page=3, per_page=10)
        assert [r.seq for r in last.items] == [20, 21, 22, 23, 24]
        assert (last.total, last.pages, last.has_next, last.has_prev) == (25, 3, False, True)
        first = helpers.paginate(query, page=1, per_page=10)
        assert [r.seq for r in first.items] == list(range(10)) and first.has_next
        beyond = paginate(session, query, page=9, per_page=10)
        assert beyond.items == [] and beyond.total == 25
        pairs = paginate(session, select(reading.sensor, reading.seq).order_by(reading.id), 1, 2)
        assert pairs.items == [("s1", 0), ("s1", 1)]
        with pytest.raises(UsageError):
            paginate(session, query, page=0)


def test_bulk_insert_round_trips_common_types(
    open_db: Callable[..., Database], database_entry: dict[str, Any]
) -> None:
    """Every common column type, with NULLs, written on each path (PostgreSQL: binary COPY
    when every value allows it, text COPY otherwise) reads back as it was given."""

    class Sample(Model):
        id: Mapped[int] = mapped_column(primary_key=True)
        big: Mapped[int] = mapped_column(BigInteger)
        small: Mapped[int | None] = mapped_column(SmallInteger)
        ratio: Mapped[float]
        label: Mapped[str | None] = mapped_column(Text)
        blob: Mapped[bytes] = mapped_column(LargeBinary)
        day: Mapped[date]
        at: Mapped[datetime] = mapped_column(DateTime())
        at_tz: Mapped[datetime] = mapped_column(DateTime(timezone=True))
        flag: Mapped[bool | None]
        meta: Mapped[dict[str, int] | None] = mapped_column(JSON)

    plus_two = timezone(timedelta(hours=2))

    def rows(start: int, n: int, *, with_meta: bool) -> Iterator[dict[str, Any]]:
        for i in range(start, start + n):
            row = {
                "id": i,
                "big": 2**40 + i,
                "small": None if i % 11 == 0 else i % 100,
                "ratio": i if i % 2 else i / 4,
                "label": None if i % 7 == 0 else f"label {i} é",
                "blob": bytes([i % 256]) * 3,
                "day": date(2024, 1, 1) + timedelta(days=i % 300),
                "at": T0 + timedelta(minutes=i, microseconds=i),
                "at_tz": datetime(2024, 6, 1, 8, 0, tzinfo=plus_two) + timedelta(hours=i),
                "flag": None if i % 5 == 0 else i % 2 == 0,
            }
            if with_meta:
                row["meta"] = {"i": i}
            yield row

    db = open_db()
    with db.transaction() as session:
        assert bulk_insert(session, Sample, rows(0, 700, with_meta=False)) == 700
        assert bulk_insert(session, Sample, rows(700, 600, with_meta=True)) == 600
        assert bulk_insert(session, Sample, rows(1300, 5, with_meta=True)) == 5
    expected = [*rows(0, 700, with_meta=False), *rows(700, 605, with_meta=True)]
    sqlite = database_entry["dialect"] == "sqlite"
    with db.session() as session:
        stored = session.scalars(select(Sample).order_by(Sample.id)).all()
        assert len(stored) == len(expected)
        for obj, row in zip(stored, expected, strict=True):
            at_tz = row["at_tz"].replace(tzinfo=None) if sqlite else row["at_tz"]
            got = {key: getattr(obj, key) for key in row}
            assert got == {**row, "at_tz": at_tz}
            assert obj.meta == row.get("meta")
