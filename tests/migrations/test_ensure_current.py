"""ensure_current: outdated and too-new databases are refused; auto_migrate upgrades, never down."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerflow import migrations
from ledgerflow.errors import SchemaOutdatedError, SchemaTooNewError
from ledgerflow.testing.projects import forget_models, make_project, write_plugin

BLOG_V2_EXTRA = """
class Tag(Model):
    id = Column(Integer, primary_key=True)
    label = Column(String(20))
"""


def test_a_database_never_migrated_is_outdated(blog: Any) -> None:
    with pytest.raises(SchemaOutdatedError) as error:
        migrations.ensure_current(blog)

    message = str(error.value)
    assert "database 'default'" in message and "no migration applied" in message
    assert "ledgerflow needs" in message and "`ledgerflow db upgrade`" in message


def test_a_plugin_revision_not_applied_is_named(blog: Any) -> None:
    migrations.upgrade(blog)
    migrations.ensure_current(blog)  # plugin has no revision yet: nothing needed
    new = migrations.make_migrations(blog, "blog", "v1")

    with pytest.raises(SchemaOutdatedError) as error:
        migrations.ensure_current(blog)

    message = str(error.value)
    assert f"is at revision base (none applied) but plugin blog needs {new.revision}" in message
    assert blog.default.describe() in message and "(run `ledgerflow db upgrade`)" in message


def test_auto_migrate_upgrades_when_behind(
    blog: Any, database_entry: dict[str, Any], tables: Any
) -> None:
    migrations.upgrade(blog)
    first = migrations.make_migrations(blog, "blog", "v1")
    migrations.upgrade(blog)
    forget_models()
    source = (blog.root / "blog" / "models.py").read_text() + BLOG_V2_EXTRA
    write_plugin(blog.root, "blog", source)
    second = migrations.make_migrations(blog, "blog", "tags")

    with pytest.raises(SchemaOutdatedError) as error:
        migrations.ensure_current(blog)
    assert f"is at revision {first.revision} but plugin blog needs {second.revision}" in str(error.value)

    auto = make_project(blog.root, database_entry, ["blog"], auto_migrate=True)
    migrations.ensure_current(auto)

    assert "tag" in tables(blog)
    migrations.ensure_current(blog)


def test_a_database_from_a_newer_version_is_refused_even_with_auto_migrate(blog: Any, sql: Any) -> None:
    migrations.upgrade(blog)
    sql(blog, "UPDATE alembic_version SET version_num = 'fee1deadbeef'")

    with pytest.raises(SchemaTooNewError) as error:
        migrations.ensure_current(blog, auto_migrate=True)

    message = str(error.value)
    assert "fee1deadbeef" in message and "newer ledgerflow or plugin" in message
    assert sql(blog, "SELECT version_num FROM alembic_version") == [("fee1deadbeef",)]
    (unknown,) = migrations.current(blog)["default"]
    assert unknown.branch == "?" and unknown.revision == "fee1deadbeef"
