"""A migration run is one transaction: failures leave the database where it was, data survives."""

from __future__ import annotations

import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import migrations
from ledgerflow.errors import MigrationError
from ledgerflow.testing.projects import forget_models, write_plugin


def write_revision(folder: Path, revision: str, down: str, body: str) -> Path:
    path = folder / f"2000_01_01_{revision}_hand_written.py"
    lines = [
        f'"""hand written {revision}"""',
        "from alembic import op",
        "import sqlalchemy as sa",
        "",
        f"revision = {revision!r}",
        f"down_revision = {down!r}",
        "branch_labels = None",
        "depends_on = None",
        "",
        "",
        "def upgrade() -> None:",
        textwrap.indent(textwrap.dedent(body).strip(), "    "),
        "",
        "",
        "def downgrade() -> None:",
        "    pass",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def migrated_blog(blog: Any, sql: Any) -> tuple[Any, str]:
    """The blog at its first revision, with an author and a post."""
    migrations.upgrade(blog)
    first = migrations.make_migrations(blog, "blog", "v1")
    migrations.upgrade(blog)
    sql(blog, "INSERT INTO author (id, name) VALUES (1, 'ann')")
    sql(blog, "INSERT INTO post (id, author_id, body) VALUES (1, 1, 'hello')")
    return blog, first.revision


def test_a_failing_revision_rolls_back_the_whole_upgrade(
    migrated_blog: tuple[Any, str], tables: Any, columns: Any, sql: Any
) -> None:
    settings, first = migrated_blog
    folder = settings.root / "blog" / "migrations"
    write_revision(folder, "a1a1a1a1a1a1", first, 'op.create_table("good_one", sa.Column("id", sa.Integer, primary_key=True))')
    bad = write_revision(folder, "b2b2b2b2b2b2", "a1a1a1a1a1a1", """
        op.create_table("partial", sa.Column("id", sa.Integer, primary_key=True))
        op.add_column("post", sa.Column("extra", sa.Integer))
        op.execute("INSERT INTO no_such_table VALUES (1)")
    """)
    before = migrations.current(settings)

    with pytest.raises(MigrationError) as error:
        migrations.upgrade(settings)

    message = str(error.value)
    assert "revision b2b2b2b2b2b2 (blog: hand written b2b2b2b2b2b2) failed" in message
    assert "rolled back" in message and str(bad) in message and "\n" not in message
    assert migrations.current(settings) == before
    assert not {"good_one", "partial"} & tables(settings)
    assert "extra" not in columns(settings, "post")
    assert sql(settings, "SELECT body FROM post") == [("hello",)]


def test_altering_a_parent_table_keeps_the_child_rows(migrated_blog: tuple[Any, str], sql: Any) -> None:
    settings, _ = migrated_blog
    forget_models()
    write_plugin(settings.root, "blog", """
        from sqlalchemy import Column, ForeignKey, Integer, String, Text
        from ledgerflow.db import Model

        class Author(Model):
            id = Column(Integer, primary_key=True)
            name = Column(String(80), nullable=True, unique=True)

        class Post(Model):
            id = Column(Integer, primary_key=True)
            author_id = Column(ForeignKey("author.id", ondelete="CASCADE"), index=True)
            body = Column(Text)
    """)
    new = migrations.make_migrations(settings, "blog", "relax author.name")
    assert any(op.startswith("alter column author.name") for op in new.operations)

    migrations.upgrade(settings)  # on SQLite: author is copied, dropped and renamed back

    assert sql(settings, "SELECT id, author_id, body FROM post") == [(1, 1, "hello")]
    assert migrations.check(settings) == []


def test_rows_left_without_parent_roll_the_migration_back(
    migrated_blog: tuple[Any, str], sql: Any
) -> None:
    settings, first = migrated_blog
    write_revision(
        settings.root / "blog" / "migrations", "c3c3c3c3c3c3", first,
        "op.execute(\"INSERT INTO post (id, author_id, body) VALUES (2, 12345, 'orphan')\")",
    )

    with pytest.raises(MigrationError) as error:
        migrations.upgrade(settings)

    assert "c3c3c3c3c3c3" in str(error.value) or "missing parents" in str(error.value)
    assert "rolled back" in str(error.value)
    assert sql(settings, "SELECT id FROM post") == [(1,)]
    assert [r.revision for r in migrations.current(settings)["default"] if r.branch == "blog"] == [first]


def test_concurrent_upgrades_wait_for_each_other(migrated_blog: tuple[Any, str], tables: Any) -> None:
    settings, first = migrated_blog
    write_revision(
        settings.root / "blog" / "migrations", "d4d4d4d4d4d4", first,
        'op.create_table("tag", sa.Column("id", sa.Integer, primary_key=True))',
    )

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrations.upgrade(settings), range(4)))

    assert sorted(len(steps) for steps in results) == [0, 0, 0, 1]
    assert "tag" in tables(settings)
