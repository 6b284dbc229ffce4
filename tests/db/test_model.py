"""The Model base: table naming, binds, duplicate names, relationships."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ledgerflow.db import Database, Model, snake_case
from ledgerflow.errors import ModelError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ComputationResult", "computation_result"),
        ("User", "user"),
        ("HTTPServer", "http_server"),
        ("Object2Detection", "object2_detection"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_table_name_bind_and_module(clean_models: None) -> None:
    class ComputationResult(Model):
        id_computation_result = Column(Integer, primary_key=True)
        input_value = Column(Integer, nullable=False)
        multiplier = Column(Integer, nullable=False)
        __table_args__ = (UniqueConstraint("input_value", "multiplier"),)

    class Renamed(Model):
        __tablename__ = "custom_name"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Remote(Model):
        __bind_key__ = "catalog"
        id: Mapped[int] = mapped_column(primary_key=True)

    assert ComputationResult.__table__.name == "computation_result"
    assert Renamed.__table__.name == "custom_name"
    assert ComputationResult.__table__.info == {"bind_key": "default", "module": __name__}
    assert Remote.__table__.info["bind_key"] == "catalog"
    unique = [c for c in ComputationResult.__table__.constraints if isinstance(c, UniqueConstraint)]
    assert unique[0].name == "uq_computation_result_input_value_multiplier"


def test_same_table_name_in_two_binds_names_both_models(clean_models: None) -> None:
    class Detection(Model):
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(ModelError) as caught:

        class OtherDetection(Model):
            __tablename__ = "detection"
            __bind_key__ = "catalog"
            id: Mapped[int] = mapped_column(primary_key=True)

    message = str(caught.value)
    assert "'detection'" in message
    assert f"{__name__}.test_same_table_name_in_two_binds_names_both_models.<locals>.Detection" in message
    assert "OtherDetection" in message
    assert "'default'" in message and "'catalog'" in message


def test_one_to_many_with_back_reference(open_db: Callable[..., Database]) -> None:
    """The Flask tutorial's User/Post: ``user.posts`` and ``post.author``."""

    class User(Model):
        id = Column(Integer, primary_key=True)
        nickname = Column(String(64), index=True, unique=True)
        email = Column(String(120), index=True, unique=True)
        posts = relationship("Post", backref="author", lazy="dynamic")

    class Post(Model):
        id = Column(Integer, primary_key=True)
        body = Column(String(140))
        timestamp = Column(DateTime)
        user_id = Column(Integer, ForeignKey("user.id"))

    db = open_db()
    with db.transaction() as session:
        john = User(nickname="john", email="john@example.com")
        session.add(john)
        session.add_all(
            [
                Post(body="first", timestamp=datetime(2024, 1, 1), author=john),
                Post(body="second", timestamp=datetime(2024, 1, 2), author=john),
            ]
        )
        session.add(User(nickname="susan", email="susan@example.com"))
    with db.session() as session:
        john = session.scalars(select(User).filter_by(nickname="john")).one()
        assert [p.body for p in john.posts.order_by(Post.timestamp)] == ["first", "second"]
        post = session.scalars(select(Post).filter_by(body="second")).one()
        assert post.author.nickname == "john"
        susan = session.scalars(select(User).filter_by(nickname="susan")).one()
        assert susan.posts.count() == 0
