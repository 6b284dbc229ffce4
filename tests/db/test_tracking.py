"""What a task's session reports as written (ledgerflow.db.tracking), on an in-memory SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, String, create_engine, insert, text
from sqlalchemy.orm import DeclarativeBase, Session

from ledgerflow.db import Helpers, tracking
from ledgerflow.db.tracking import track


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "item"
    id = Column(Integer, primary_key=True)
    label = Column(String(20))


class Pair(Base):
    __tablename__ = "pair"
    left = Column(Integer, primary_key=True)
    right = Column(String(5), primary_key=True)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([Item(id=1, label="old"), Item(id=2, label="old")])
        s.commit()
        yield s
    engine.dispose()


def test_objects_updated_or_deleted_and_composite_keys(session: Session) -> None:
    tracker = track(session)
    item = session.get(Item, 1)
    assert item is not None
    Helpers(session).update(item, {"label": "new"})  # an UPDATE of a loaded object
    session.add(Pair(left=7, right="x"))
    session.add(Item(id=3, label="gone soon"))
    session.commit()
    doomed = session.get(Item, 3)
    session.delete(doomed)  # the task deleted it: it need not exist later
    session.get(Item, 2)  # read only
    session.commit()
    assert tracker.rows() == [
        ("default", "item", '{"id":1}'),
        ("default", "pair", '{"left":7,"right":"x"}'),
    ]


def test_uncommitted_writes_and_textual_sql_are_not_reported(session: Session) -> None:
    tracker = track(session)
    session.execute(text("INSERT INTO item (id, label) VALUES (10, 'text')"))  # not tracked
    session.add(Item(id=11))
    session.flush()  # flushed, never committed
    assert tracker.rows() == []
    session.commit()
    assert tracker.rows() == [("default", "item", '{"id":11}')]


def test_rows_without_their_keys_are_reported_as_the_table(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = track(session)
    session.connection().execute(insert(Item.__table__), [{"label": "a"}, {"label": "b"}])
    session.commit()
    assert tracker.rows() == [("default", "item", None)]  # must exist and hold rows

    monkeypatch.setattr(tracking, "MAX_KEYS_PER_TABLE", 3)
    with Session(session.get_bind()) as other:
        capped = track(other)
        Helpers(other).bulk_insert(Item, [{"id": 20 + i, "label": "bulk"} for i in range(5)])
        other.commit()
    assert capped.rows() == [  # beyond the cap: the first keys, and the table as a whole
        ("default", "item", None),
        ("default", "item", '{"id":20}'),
        ("default", "item", '{"id":21}'),
        ("default", "item", '{"id":22}'),
    ]
