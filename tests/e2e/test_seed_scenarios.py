"""The seed documents' scenarios, end to end through the CLI and the library, on both dialects.

(a) the pipeline tutorial's data_reduction plugin: ComputationResult, its migration,
    upgrade, rows through the helpers, downgrade;
(b) the Flask tutorial's microblog: User/Post evolved through two more migrations (a new
    column, a renamed one), with the data kept up and down;
(c) the astronomy plugin library's Object/Detection: get_or_create, a 100,000-row
    bulk_insert, then update.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import func, select

from ledgerflow import migrations
from ledgerflow.cli.main import cli
from ledgerflow.config import Settings
from ledgerflow.db import Database, Helpers, bulk_insert, find, get_or_create, paginate, update
from ledgerflow.db.plugins import load_plugins
from ledgerflow.testing.projects import forget_models, make_project, write_plugin


def ledgerflow(settings: Settings, *args: str) -> str:
    """Run a command in-process (click's runner); returns its output, failing on a non-zero exit."""
    result = CliRunner().invoke(cli, ["--config", str(settings.path), *args])
    assert result.exit_code == 0, f"ledgerflow {' '.join(args)}: {result.output}{result.exception!r}"
    return result.output


def ledgerflow_process(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command in a new process, as a shell would."""
    return subprocess.run(
        [sys.executable, "-m", "ledgerflow", "--config", str(settings.path), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


def models_of(settings: Settings, plugin: str) -> ModuleType:
    """The plugin's models module as the project's code would import it now."""
    load_plugins(settings)
    return importlib.import_module(f"{plugin}.models")


def tables(settings: Settings) -> set[str]:
    with Database(settings, role="admin") as db:
        return set(sa.inspect(db.engine()).get_table_names())


def columns(settings: Settings, table: str) -> list[str]:
    with Database(settings, role="admin") as db:
        return [c["name"] for c in sa.inspect(db.engine()).get_columns(table)]


def revise(root: Path, plugin: str, source: str) -> None:
    """Edit the plugin's models, as a user would between two migrations."""
    forget_models()
    write_plugin(root, plugin, source)


# --------------------------------------------------------------------------- (a) data_reduction

DATA_REDUCTION = """
    from sqlalchemy import Column, Integer, UniqueConstraint
    from ledgerflow.db import Model

    class ComputationResult(Model):
        id_computation_result = Column(Integer, primary_key=True)
        input_value = Column(Integer, nullable=False)
        multiplier = Column(Integer, nullable=False)
        result = Column(Integer, nullable=False)

        __table_args__ = (UniqueConstraint("input_value", "multiplier"),)
"""


def test_data_reduction_plugin(
    tmp_path: Path, database_entry: dict[str, Any], fresh_models: None
) -> None:
    plugin = "tuto.data_reduction"
    package = write_plugin(tmp_path, plugin, DATA_REDUCTION)
    settings = make_project(tmp_path, database_entry, plugins=[plugin])

    first = ledgerflow_process(settings, "db", "upgrade", "heads")
    assert first.returncode == 0, first.stderr
    assert "ledgerflow" in first.stdout
    made = ledgerflow(settings, "db", "make-migrations", "--plugin", plugin,
                      "-m", "Add table 'computation_result'")
    assert "create table computation_result" in made
    [revision_file] = (package / "migrations").glob("*.py")
    source = revision_file.read_text()
    assert "branch_labels = ('tuto.data_reduction',)" in source
    assert "add_table_computation_result" in revision_file.name
    assert "Done: 1 migration applied." in ledgerflow(settings, "db", "upgrade")
    assert "in sync" in ledgerflow(settings, "db", "check")

    computation_result = models_of(settings, plugin).ComputationResult
    with Database(settings) as db:  # the user role, as a pipeline runs
        with db.transaction() as session:
            outcomes = [
                get_or_create(
                    session, computation_result,
                    filter_by={"input_value": i * 10, "multiplier": 2},
                    defaults={"result": i * 10 * 2},
                )[1]
                for i in (0, 1, 2, 1, 0)
            ]
            assert outcomes == [True, True, True, False, False]
            Helpers(session).bulk_insert(
                computation_result,
                ({"input_value": i, "multiplier": 3, "result": 3 * i} for i in range(100)),
            )
        with db.session() as session:
            rows = find(session, computation_result, multiplier=2)
            assert sorted(r.result for r in rows) == [0, 20, 40]
            page = paginate(
                session,
                select(computation_result).filter_by(multiplier=3).order_by(
                    computation_result.input_value
                ),
                page=2, per_page=30,
            )
            assert [r.result for r in page.items] == [3 * i for i in range(30, 60)]
            assert page.total == 100
        with pytest.raises(sa.exc.IntegrityError), db.transaction() as session:
            session.add(computation_result(input_value=10, multiplier=2, result=0))

    refused = ledgerflow_process(settings, "db", "downgrade", f"{plugin}@base")
    assert refused.returncode == 2 and "computation_result (103 rows)" in refused.stderr
    assert "computation_result" in tables(settings)
    down = ledgerflow_process(settings, "db", "downgrade", f"{plugin}@base", "--yes")
    assert down.returncode == 0, down.stderr
    assert "computation_result" not in tables(settings)
    assert "lf_run" in tables(settings)  # the ledger's own branch is left alone
    assert migrations.check(settings) != []  # the model is there, its table is not


# --------------------------------------------------------------------------- (b) microblog

MICROBLOG_V1 = """
    from sqlalchemy import Column, DateTime, ForeignKey, Integer, String
    from sqlalchemy.orm import relationship
    from ledgerflow.db import Model

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
"""
MICROBLOG_V2 = MICROBLOG_V1.replace(
    '        email = Column(String(120), index=True, unique=True)\n',
    '        email = Column(String(120), index=True, unique=True)\n'
    '        about_me = Column(String(140))\n',
)
MICROBLOG_V3 = MICROBLOG_V2.replace("body = Column(String(140))", "text = Column(String(140))")

T0 = datetime(2024, 5, 1, 9, 30)


def _bodies(settings: Settings, column: str) -> list[tuple[str, str]]:
    with Database(settings) as db, db.engine().connect() as conn:
        rows = conn.execute(
            sa.text(f'SELECT u.nickname, p.{column} FROM post p JOIN "user" u ON u.id = p.user_id '
                    "ORDER BY p.id")
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_microblog_evolves_with_data_kept(
    tmp_path: Path, migrated_database_entry: dict[str, Any], fresh_models: None
) -> None:
    write_plugin(tmp_path, "microblog", MICROBLOG_V1)
    settings = make_project(tmp_path, migrated_database_entry, plugins=["microblog"])
    ledgerflow(settings, "db", "upgrade")
    ledgerflow(settings, "db", "make-migrations", "--plugin", "microblog", "-m", "users and posts")
    ledgerflow(settings, "db", "upgrade")
    first = migrations.current(settings)["default"]
    rev1 = {info.branch: info.revision for info in first}["microblog"]

    m = models_of(settings, "microblog")
    with Database(settings) as db, db.transaction() as session:
        john = m.User(nickname="john", email="john@example.com")
        susan = m.User(nickname="susan", email="susan@example.com")
        session.add_all([john, susan])
        session.add_all([
            m.Post(body="my first post!", timestamp=T0, author=john),
            m.Post(body="hello from susan", timestamp=T0 + timedelta(hours=1), author=susan),
            m.Post(body="second post", timestamp=T0 + timedelta(hours=2), author=john),
        ])
    expected = [("john", "my first post!"), ("susan", "hello from susan"), ("john", "second post")]
    assert _bodies(settings, "body") == expected

    revise(tmp_path, "microblog", MICROBLOG_V2)
    added = ledgerflow(settings, "db", "make-migrations", "--plugin", "microblog", "-m", "about me")
    assert "add column user.about_me" in added
    ledgerflow(settings, "db", "upgrade")
    rev2 = {i.branch: i.revision for i in migrations.current(settings)["default"]}["microblog"]
    m = models_of(settings, "microblog")
    with Database(settings) as db, db.transaction() as session:
        john = find(session, m.User, nickname="john")[0]
        update(session, john, {"about_me": "astronomer"})
        assert [p.body for p in john.posts.order_by(m.Post.timestamp)] == [
            "my first post!", "second post",
        ]
    assert _bodies(settings, "body") == expected

    revise(tmp_path, "microblog", MICROBLOG_V3)
    renamed = ledgerflow(settings, "db", "make-migrations", "--plugin", "microblog", "-m", "rename")
    assert "renamed column post.body -> post.text (data kept)" in renamed
    ledgerflow(settings, "db", "upgrade")
    assert "text" in columns(settings, "post") and "body" not in columns(settings, "post")
    assert _bodies(settings, "text") == expected
    m = models_of(settings, "microblog")
    with Database(settings) as db, db.session() as session:
        post = session.scalars(select(m.Post).filter_by(text="hello from susan")).one()
        assert post.author.nickname == "susan"
        john = session.scalars(select(m.User).filter_by(nickname="john")).one()
        assert john.about_me == "astronomer"
    assert migrations.check(settings) == []

    ledgerflow(settings, "db", "downgrade", rev2)  # undo the rename: data kept
    assert _bodies(settings, "body") == expected
    ledgerflow(settings, "db", "downgrade", rev1)  # drop about_me: only that column goes
    assert "about_me" not in columns(settings, "user")
    assert _bodies(settings, "body") == expected
    ledgerflow(settings, "db", "upgrade")  # and up again
    assert _bodies(settings, "text") == expected
    assert migrations.check(settings) == []


# --------------------------------------------------------------------------- (c) astronomy

ASTRONOMY = """
    from sqlalchemy import BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Integer, String
    from sqlalchemy.orm import relationship
    from ledgerflow.db import Model

    class Object(Model):
        oid = Column(String(20), primary_key=True)
        ndet = Column(Integer, nullable=False, default=0)
        firstmjd = Column(Float)
        lastmjd = Column(Float)
        meanra = Column(Float)
        meandec = Column(Float)
        detections = relationship("Detection", back_populates="object", lazy="dynamic")

    class Detection(Model):
        candid = Column(BigInteger, primary_key=True)
        oid = Column(String(20), ForeignKey("object.oid"), nullable=False, index=True)
        mjd = Column(Float, nullable=False)
        fid = Column(Integer, nullable=False)
        magpsf = Column(Float, nullable=False)
        sigmapsf = Column(Float, nullable=False)
        isdiffpos = Column(Boolean, nullable=False)
        ingested_at = Column(DateTime, nullable=False)
        object = relationship("Object", back_populates="detections")
"""
OBJECTS = 1_000
DETECTIONS = 100_000


def detections(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "candid": 10**12 + i,
            "oid": f"ZTF{i % OBJECTS:08d}",
            "mjd": 59000.0 + i / 1000,
            "fid": 1 + i % 2,
            "magpsf": 18.0 + (i % 50) / 10,
            "sigmapsf": 0.05,
            "isdiffpos": i % 4 != 0,
            "ingested_at": T0 + timedelta(milliseconds=i),
        }


@pytest.mark.slow
def test_astronomy_objects_and_detections(
    tmp_path: Path, migrated_database_entry: dict[str, Any], fresh_models: None
) -> None:
    write_plugin(tmp_path, "astro", ASTRONOMY)
    settings = make_project(tmp_path, migrated_database_entry, plugins=["astro"])
    migrations.upgrade(settings)
    new = migrations.make_migrations(settings, "astro", "objects and detections")
    assert not new.empty and any("create table detection" in op for op in new.operations)
    migrations.upgrade(settings)
    m = models_of(settings, "astro")

    with Database(settings) as db:
        with db.transaction() as session:
            created = [
                get_or_create(session, m.Object, {"oid": f"ZTF{i:08d}"}, {"ndet": 0})[1]
                for i in range(OBJECTS)
            ]
        assert all(created)
        with db.transaction() as session:
            obj, again = get_or_create(session, m.Object, {"oid": "ZTF00000007"}, {"ndet": 99})
            assert again is False and obj.ndet == 0
            assert bulk_insert(session, m.Detection, detections(DETECTIONS)) == DETECTIONS

        with db.session() as session:
            count, ndiff = session.execute(
                select(func.count(), func.sum(sa.case((m.Detection.isdiffpos, 1), else_=0)))
            ).one()
            assert (count, ndiff) == (DETECTIONS, DETECTIONS * 3 // 4)
            last = session.get(m.Detection, 10**12 + DETECTIONS - 1)
            assert last.oid == f"ZTF{(DETECTIONS - 1) % OBJECTS:08d}" and last.fid == 2
            assert last.ingested_at == T0 + timedelta(milliseconds=DETECTIONS - 1)
            assert last.object.oid == last.oid

        stats = select(
            m.Detection.oid, func.count(), func.min(m.Detection.mjd), func.max(m.Detection.mjd)
        ).group_by(m.Detection.oid)
        with db.transaction() as session:
            summary = {oid: (n, first, last) for oid, n, first, last in session.execute(stats)}
            for obj in session.scalars(select(m.Object)):
                n, first, last = summary[obj.oid]
                update(session, obj, {"ndet": n, "firstmjd": first, "lastmjd": last})

        with db.session() as session:
            assert session.scalar(select(func.sum(m.Object.ndet))) == DETECTIONS
            seven = session.get(m.Object, "ZTF00000007")
            assert seven.ndet == DETECTIONS // OBJECTS
            assert seven.firstmjd == pytest.approx(59000.007)
            assert seven.lastmjd == pytest.approx(59000.0 + (DETECTIONS - OBJECTS + 7) / 1000)
            assert seven.detections.count() == DETECTIONS // OBJECTS
            page = paginate(
                session, select(m.Detection).filter_by(oid="ZTF00000007").order_by(
                    m.Detection.mjd
                ), page=1, per_page=10,
            )
            assert page.total == 100 and page.items[0].candid == 10**12 + 7
