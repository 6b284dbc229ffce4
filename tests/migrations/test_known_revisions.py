"""The check before every run reads the revision files as text and never imports Alembic.

Its reading must agree with Alembic's (which revision belongs to which branch, each
branch's head), and whatever it cannot read exactly is left to Alembic, which names the
problem.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import migrations
from ledgerflow.config.settings import Settings
from ledgerflow.db.plugins import load_plugins
from ledgerflow.errors import MigrationError, SchemaOutdatedError, SchemaTooNewError
from ledgerflow.migrations.branches import (
    VERSIONS_DIR,
    branches_for,
    declared_revision,
    known_revisions,
)
from ledgerflow.migrations.scripts import bind_scripts, clear_cache
from ledgerflow.testing.projects import forget_models, make_project

SQLITE = {"dialect": "sqlite", "path": "ledger.db"}


def _as_text(settings: Settings, bind: str = "default") -> Any:
    known = known_revisions(bind, branches_for(bind, load_plugins(settings)))
    assert known is not None
    return known


def _agree(settings: Settings) -> None:
    alembic = bind_scripts(settings, "default")
    text = _as_text(settings)
    assert text.heads == alembic.heads
    assert {r: b.label for r, b in text.owner.items()} == {r: b.label for r, b in alembic.owner.items()}


def test_the_framework_revisions_read_as_text_agree_with_alembic(tmp_path: Path, fresh_models: None) -> None:
    settings = make_project(tmp_path, SQLITE, plugins=[])
    _agree(settings)
    assert len(_as_text(settings).owner) == len(list(VERSIONS_DIR.glob("*.py")))


def test_plugin_revisions_read_as_text_agree_with_alembic(blog: Settings) -> None:
    migrations.upgrade(blog)
    first = migrations.make_migrations(blog, "blog", "v1")
    migrations.upgrade(blog)
    models = blog.root / "blog" / "models.py"
    models.write_text(models.read_text() + "\nclass Tag(Model):\n    id = Column(Integer, primary_key=True)\n")
    forget_models()
    second = migrations.make_migrations(blog, "blog", "tags")

    _agree(blog)
    assert _as_text(blog).heads["blog"] == second.revision != first.revision


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('revision = "abc"\ndown_revision = None\n', ("abc", ())),
        ("revision: str = 'abc'\ndown_revision: str | None = 'def'  # the first\n", ("abc", ("def",))),
        ('revision = "m"\ndown_revision = ("a", "b")\n', ("m", ("a", "b"))),
        ('revision = make_id()\ndown_revision = None\n', None),
        ('revision = "abc"\n', None),
        ('revision = "a"\nrevision = "b"\ndown_revision = None\n', None),
        ('revision = "abc"\ndown_revision = 3\n', None),
    ],
    ids=["plain", "annotated", "merge", "computed", "no-down", "twice", "not-a-string"],
)
def test_declared_revision(source: str, expected: Any) -> None:
    assert declared_revision('"""doc"""\nfrom alembic import op\n' + source) == expected


REVISION = '''"""{rev}"""
revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


def _write_revisions(settings: Settings, *revisions: tuple[str, str | None]) -> None:
    folder = settings.root / "blog" / "migrations"
    folder.mkdir(exist_ok=True)
    for rev, down in revisions:
        (folder / f"{rev}.py").write_text(REVISION.format(rev=rev, down=down))
    clear_cache()


@pytest.mark.filterwarnings("ignore:Revision zzz referenced:UserWarning")
@pytest.mark.parametrize(
    ("revisions", "message"),
    [
        ((("aaa", None), ("bbb", "aaa"), ("ccc", "aaa")), "2 heads on branch 'blog'"),
        ((("aaa", "zzz"),), "'zzz'"),
    ],
    ids=["two-heads", "unknown-down-revision"],
)
def test_revisions_only_alembic_can_judge_are_left_to_it(
    blog: Settings, revisions: tuple[tuple[str, str | None], ...], message: str
) -> None:
    migrations.upgrade(blog)
    _write_revisions(blog, *revisions)

    assert known_revisions("default", branches_for("default", load_plugins(blog))) is None
    with pytest.raises(MigrationError) as error:
        migrations.ensure_current(blog)
    assert message in str(error.value)


def test_a_cycle_is_left_to_alembic(blog: Settings) -> None:
    _write_revisions(blog, ("aaa", None), ("bbb", "ccc"), ("ccc", "bbb"))
    assert known_revisions("default", branches_for("default", load_plugins(blog))) is None


def test_a_new_revision_file_is_seen_at_once(blog: Settings) -> None:
    migrations.upgrade(blog)
    _write_revisions(blog, ("aaa", None))
    migrations.upgrade(blog)
    migrations.ensure_current(blog)
    (blog.root / "blog" / "migrations" / "bbb.py").write_text(REVISION.format(rev="bbb", down="aaa"))

    with pytest.raises(SchemaOutdatedError, match="is at revision aaa but plugin blog needs bbb"):
        migrations.ensure_current(blog)


# -- the check in a fresh interpreter: which modules it loads ----------------------------

_CHECK = """
import json, sys
from ledgerflow.config import load_settings
from ledgerflow.errors import LedgerflowError
from ledgerflow.migrations import ensure_current
try:
    ensure_current(load_settings({config!r}))
    outcome = "ok"
except LedgerflowError as exc:
    outcome = type(exc).__name__
print(json.dumps([outcome, sorted({{m.split('.')[0] for m in sys.modules}} & {{'alembic', 'mako'}})]))
"""


def _check_in_fresh_process(settings: Settings) -> tuple[str, list[str]]:
    assert settings.path is not None
    code = _CHECK.format(config=str(settings.path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    outcome, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    return outcome, loaded


def test_the_check_imports_no_alembic_whatever_its_verdict(blog: Settings, sql: Any) -> None:
    migrations.upgrade(blog)
    migrations.make_migrations(blog, "blog", "v1")
    assert _check_in_fresh_process(blog) == ("SchemaOutdatedError", [])

    migrations.upgrade(blog)
    assert _check_in_fresh_process(blog) == ("ok", [])

    sql(blog, "UPDATE alembic_version SET version_num = 'fee1deadbeef' WHERE version_num IN "
              "(SELECT version_num FROM alembic_version ORDER BY version_num LIMIT 1)")
    assert _check_in_fresh_process(blog) == ("SchemaTooNewError", [])


def test_auto_migrate_still_upgrades(tmp_path: Path, fresh_models: None) -> None:
    with pytest.raises(SchemaOutdatedError):
        migrations.ensure_current(make_project(tmp_path, SQLITE, plugins=[]))
    migrations.ensure_current(make_project(tmp_path, SQLITE, plugins=[], auto_migrate=True))
    migrations.ensure_current(make_project(tmp_path, SQLITE, plugins=[]))


def test_a_too_new_ledger_is_refused_before_any_upgrade(tmp_path: Path, fresh_models: None, sql: Any) -> None:
    settings = make_project(tmp_path, SQLITE, plugins=[])
    migrations.upgrade(settings)
    sql(settings, "INSERT INTO alembic_version (version_num) VALUES ('fee1deadbeef')")
    with pytest.raises(SchemaTooNewError, match="fee1deadbeef"):
        migrations.ensure_current(make_project(tmp_path, SQLITE, plugins=[], auto_migrate=True))

