"""Plugin branches: make_migrations, upgrade/downgrade with data kept, renames, binds, check."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import migrations
from ledgerflow.db.plugins import load_plugins
from ledgerflow.errors import MigrationError, PluginImportError, SchemaOutdatedError, UsageError
from ledgerflow.ledger.schema import LEDGER_TABLES
from ledgerflow.testing.projects import forget_models, make_project, write_plugin

BLOG_V2 = """
from sqlalchemy import Column, ForeignKey, Integer, String, Text
from ledgerflow.db import Model

class Author(Model):
    id = Column(Integer, primary_key=True)
    name = Column(String(50), nullable=False, unique=True)
    email = Column(String(100))

class Post(Model):
    id = Column(Integer, primary_key=True)
    author_id = Column(ForeignKey("author.id", ondelete="CASCADE"), index=True)
    body = Column(Text)
"""

BLOG_RENAMED = """
from sqlalchemy import Column, ForeignKey, Integer, String, Text
from ledgerflow.db import Model

class Writer(Model):
    id = Column(Integer, primary_key=True)
    name = Column(String(50), nullable=False, unique=True)

class Post(Model):
    id = Column(Integer, primary_key=True)
    author_id = Column(ForeignKey("writer.id", ondelete="CASCADE"), index=True)
    content = Column(Text)
"""


def evolve(root: Path, source: str, name: str = "blog") -> None:
    forget_models()
    write_plugin(root, name, source)


def test_plugin_branch_upgrade_evolve_downgrade_keeps_data(
    blog: Any, sql: Any, tables: Any, columns: Any
) -> None:
    migrations.upgrade(blog)
    first = migrations.make_migrations(blog, "blog", "add author and post")

    assert first.path.parent == blog.root / "blog" / "migrations"
    assert first.branch == "blog" and not first.empty
    assert "create table author" in first.operations and "create table post" in first.operations
    assert "branch_labels = ('blog',)" in first.path.read_text()
    steps = migrations.upgrade(blog)
    assert [(s.branch, s.revision, s.direction) for s in steps] == [("blog", first.revision, "up")]
    sql(blog, "INSERT INTO author (id, name) VALUES (1, 'ann')")
    sql(blog, "INSERT INTO post (id, author_id, body) VALUES (1, 1, 'hello')")

    evolve(blog.root, BLOG_V2)
    second = migrations.make_migrations(blog, "blog", "author email")
    assert any(op.startswith("add column author.email") for op in second.operations)
    assert f"down_revision = '{first.revision}'" in second.path.read_text()
    migrations.upgrade(blog)
    assert "email" in columns(blog, "author")
    assert sql(blog, "SELECT a.name, p.body FROM post p JOIN author a ON a.id = p.author_id") == [
        ("ann", "hello")
    ]

    migrations.downgrade(blog, "blog@-1")
    assert "email" not in columns(blog, "author")
    assert sql(blog, "SELECT body FROM post") == [("hello",)]
    migrations.downgrade(blog, "blog@base")
    assert not {"author", "post"} & tables(blog)
    assert set(LEDGER_TABLES) <= tables(blog)  # other branches untouched


def test_renames_keep_data(blog: Any, sql: Any, tables: Any, columns: Any) -> None:
    migrations.upgrade(blog)
    migrations.make_migrations(blog, "blog", "v1")
    migrations.upgrade(blog)
    sql(blog, "INSERT INTO author (id, name) VALUES (1, 'ann')")
    sql(blog, "INSERT INTO post (id, author_id, body) VALUES (7, 1, 'kept')")

    evolve(blog.root, BLOG_RENAMED)
    new = migrations.make_migrations(blog, "blog", "renames")

    assert new.renames == [
        "table author -> writer (renamed, data kept)",
        "column post.body -> post.content (renamed, data kept)",
    ]
    assert "rename table author -> writer" in new.operations
    migrations.upgrade(blog)
    assert "author" not in tables(blog) and "content" in columns(blog, "post")
    assert sql(blog, "SELECT w.name, p.content FROM post p JOIN writer w ON w.id = p.author_id") == [
        ("ann", "kept")
    ]
    assert migrations.check(blog) == []

    migrations.downgrade(blog, "blog@-1")
    assert sql(blog, "SELECT a.name, p.body FROM post p JOIN author a ON a.id = p.author_id") == [
        ("ann", "kept")
    ]


def test_no_renames_writes_drop_and_add(blog: Any) -> None:
    migrations.upgrade(blog)
    migrations.make_migrations(blog, "blog", "v1")
    migrations.upgrade(blog)
    evolve(blog.root, BLOG_RENAMED)

    new = migrations.make_migrations(blog, "blog", "no renames", renames=False)

    assert new.renames == []
    assert {"create table writer", "drop table author", "drop column post.body"} <= set(new.operations)
    assert any(op.startswith("add column post.content") for op in new.operations)


def test_ambiguous_rename_stays_drop_and_add_with_a_warning(blog: Any) -> None:
    migrations.upgrade(blog)
    migrations.make_migrations(blog, "blog", "v1")
    migrations.upgrade(blog)
    evolve(blog.root, BLOG_V2.replace("body = Column(Text)", "title = Column(Text)\n    text = Column(Text)"))

    new = migrations.make_migrations(blog, "blog", "ambiguous")

    assert new.renames == []
    assert "drop column post.body" in new.operations
    (warning,) = [op for op in new.operations if op.startswith("warning:")]
    assert "post" in warning and "ambiguous" in warning


def test_nothing_to_do_writes_nothing(blog: Any) -> None:
    migrations.upgrade(blog)
    migrations.make_migrations(blog, "blog", "v1")
    migrations.upgrade(blog)
    before = sorted((blog.root / "blog" / "migrations").glob("*.py"))

    new = migrations.make_migrations(blog, "blog", "again")

    assert new.empty and new.operations == [] and new.revision == ""
    assert sorted((blog.root / "blog" / "migrations").glob("*.py")) == before


def test_deleted_model_drops_only_that_plugins_table(
    tmp_path: Path, database_entry: dict[str, Any], fresh_models: None, tables: Any
) -> None:
    shop = 'from sqlalchemy import Column, Integer\nfrom ledgerflow.db import Model\n\nclass {0}(Model):\n    id = Column(Integer, primary_key=True)\n'
    write_plugin(tmp_path, "blog", shop.format("Post") + "\n" + shop.format("Comment").split("\n\n", 1)[1])
    write_plugin(tmp_path, "shop.orders", shop.format("Order"))
    settings = make_project(tmp_path, database_entry, plugins=["blog", "shop.orders"])
    migrations.upgrade(settings)
    migrations.make_migrations(settings, "blog", "blog tables")
    assert migrations.make_migrations(settings, "shop.orders", "orders").operations == ["create table order"]
    migrations.upgrade(settings)

    evolve(tmp_path, shop.format("Post"))
    new = migrations.make_migrations(settings, "blog", "drop comment")

    assert new.operations == ["drop table comment"]
    migrations.upgrade(settings)
    assert "comment" not in tables(settings) and {"post", "order"} <= tables(settings)


def test_check_lists_differences_until_migrated(blog: Any) -> None:
    migrations.upgrade(blog)
    migrations.make_migrations(blog, "blog", "v1")
    assert any("is at revision base" in line for line in migrations.check(blog))
    migrations.upgrade(blog)
    assert migrations.check(blog) == []

    evolve(blog.root, BLOG_V2)
    (line,) = migrations.check(blog)
    assert line.startswith("default: models need: add column author.email")


def test_other_bind_has_its_own_folder_and_version_table(
    tmp_path: Path, database_entry: dict[str, Any], second_entry: dict[str, Any],
    fresh_models: None, tables: Any,
) -> None:
    write_plugin(tmp_path, "catalog", """
        from sqlalchemy import Column, Integer, String
        from ledgerflow.db import Model

        class Star(Model):
            __bind_key__ = "catalog"
            id = Column(Integer, primary_key=True)
            name = Column(String(40))
    """)
    settings = make_project(
        tmp_path, database_entry, plugins=["catalog"], databases={"catalog": second_entry}
    )
    new = migrations.make_migrations(settings, "catalog", "stars", bind="catalog")
    assert new.path.parent == tmp_path / "catalog" / "migrations" / "catalog"
    steps = migrations.upgrade(settings)

    assert {(s.bind, s.branch) for s in steps} == {("default", "ledgerflow"), ("catalog", "catalog")}
    assert migrations.make_migrations(settings, "catalog", "nothing in default").empty
    assert "star" in tables(settings, "catalog") and "star" not in tables(settings)
    assert not set(LEDGER_TABLES) & tables(settings, "catalog")
    assert [r.revision for r in migrations.current(settings)["catalog"]] == [new.revision]


def test_plugin_not_in_configuration(blog: Any) -> None:
    with pytest.raises(UsageError) as error:
        migrations.make_migrations(blog, "shop", "x")
    assert "'shop' is not listed under plugins" in str(error.value)
    assert str(blog.path) in str(error.value)


def test_autogenerate_needs_the_database_at_heads(blog: Any) -> None:
    with pytest.raises(SchemaOutdatedError) as error:
        migrations.make_migrations(blog, "blog", "ledger not created")
    assert "`ledgerflow db upgrade`" in str(error.value)
    migrations.upgrade(blog)
    first = migrations.make_migrations(blog, "blog", "v1")

    with pytest.raises(SchemaOutdatedError) as error:
        migrations.make_migrations(blog, "blog", "v1 not applied yet")

    message = str(error.value)
    assert f"plugin blog needs {first.revision}" in message and "`ledgerflow db upgrade`" in message
    assert list((blog.root / "blog" / "migrations").glob("*.py")) == [first.path]


def test_two_heads_on_a_plugin_branch(blog: Any) -> None:
    migrations.upgrade(blog)
    first = migrations.make_migrations(blog, "blog", "v1")
    clone = first.path.with_name("2000_01_01_0123456789ab_clone.py")
    shutil.copy(first.path, clone)
    text = clone.read_text()
    clone.write_text(
        re.sub(r"branch_labels = .*", "branch_labels = None", text)
        .replace(f"revision = '{first.revision}'", "revision = '0123456789ab'")
        .replace("down_revision = None", f"down_revision = '{first.revision}'")
    )
    third = first.path.with_name("2000_01_01_ba9876543210_other.py")
    third.write_text(clone.read_text().replace("0123456789ab", "ba9876543210"))

    with pytest.raises(MigrationError) as error:
        migrations.upgrade(blog)

    message = str(error.value)
    assert str(first.path.parent) in message and "branch 'blog'" in message
    assert "0123456789ab and ba9876543210" in message and "merge" in message
    assert "\n" not in message


def test_plugin_that_cannot_be_imported(tmp_path: Path, database_entry: dict[str, Any], fresh_models: None) -> None:
    write_plugin(tmp_path, "broken", "import no_such_module_here\n")
    settings = make_project(tmp_path, database_entry, plugins=["broken"])

    with pytest.raises(PluginImportError) as error:
        load_plugins(settings)

    message = str(error.value)
    assert "plugin 'broken'" in message and str(settings.path) in message
    assert "No module named 'no_such_module_here'" in message and "PYTHONPATH" in message
    assert "\n" not in message
    with pytest.raises(PluginImportError):
        migrations.upgrade(make_project(tmp_path, database_entry, plugins=["missing.plugin"]))


def test_a_user_defined_column_type_is_imported_by_the_revision(
    tmp_path: Path, database_entry: dict[str, Any], fresh_models: None, tables: Any
) -> None:
    write_plugin(tmp_path, "geo.types", """
        from sqlalchemy.types import String, TypeDecorator

        class Code(TypeDecorator):
            impl = String(12)
            cache_ok = True

            def process_bind_param(self, value, dialect):
                return value.upper()
    """)
    write_plugin(tmp_path, "geo", """
        from sqlalchemy import Column, Integer
        from ledgerflow.db import Model
        from geo.types.models import Code

        class Place(Model):
            id = Column(Integer, primary_key=True)
            code = Column(Code())
    """)
    settings = make_project(tmp_path, database_entry, plugins=["geo"])
    migrations.upgrade(settings)

    new = migrations.make_migrations(settings, "geo", "places")

    source = new.path.read_text()
    assert "import geo.types.models" in source and "info=" not in source
    assert [s.revision for s in migrations.upgrade(settings)] == [new.revision]
    assert "place" in tables(settings)
