"""The revision scripts of each database: one Alembic branch per owner, checked and cached.

A *branch* is owned either by the framework (label ``ledgerflow``, the ``lf_`` tables, files
in ``ledgerflow/migrations/versions/``, bind ``default`` only) or by a plugin (label = its
dotted name, files in ``<plugin>/migrations/`` for bind ``default`` and
``<plugin>/migrations/<bind>/`` for the others). Every branch of a bind shares one Alembic
``ScriptDirectory`` and one version table in that database.

Which revision belongs to which branch is decided by the folder its file lives in, not by
Alembic's branch labels, so a conflict can always be reported with the folder to fix.
:func:`bind_scripts` caches the loaded scripts per process; the cache key includes the name,
size and mtime of every revision file, so a new or edited revision is picked up at once.
"""

from __future__ import annotations

import ast
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from ledgerflow.config.settings import Settings
from ledgerflow.db.plugins import Plugin, load_plugins
from ledgerflow.errors import MigrationError
from ledgerflow.migrations.branches import (
    FRAMEWORK_BRANCH,
    LEDGER_PREFIX,
    PACKAGE_DIR,
    VERSION_TABLE,
    VERSIONS_DIR,
    Branch,
    binds_of,
    branches_for,
    check_bind,
    revision_files,
)
from ledgerflow.migrations.branches import clear_cache as branches_cache_clear

__all__ = [
    "FRAMEWORK_BRANCH",
    "LEDGER_PREFIX",
    "VERSIONS_DIR",
    "VERSION_TABLE",
    "BindScripts",
    "Branch",
    "bind_scripts",
    "binds_of",
    "branches_for",
    "check_bind",
    "clear_cache",
]

FILE_TEMPLATE = "%(year)d_%(month).2d_%(day).2d_%(rev)s_%(slug)s"
_NOWHERE = PACKAGE_DIR / "versions" / "__no_branch__"  # never created


@dataclass
class BindScripts:
    """Every branch and revision script of one bind, with one head per branch."""

    bind: str
    branches: list[Branch]
    directory: ScriptDirectory
    owner: dict[str, Branch] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)  # branch label -> head revision

    def branch(self, label: str) -> Branch | None:
        return next((b for b in self.branches if b.label == label), None)

    def branch_of(self, revision: str) -> Branch | None:
        return self.owner.get(revision)

    def scripts_of(self, branch: Branch) -> list[Script]:
        """The branch's revisions from its base to its head."""
        scripts = [s for s in self.directory.walk_revisions() if self.owner.get(s.revision) is branch]
        return scripts[::-1]

    def label_of(self, revision: str) -> str:
        branch = self.owner.get(revision)
        return branch.label if branch else "?"

    def owned_table_names(self, branch: Branch) -> set[str]:
        """Tables the branch's models define or its revisions created and did not drop."""
        created: set[str] = set()
        for script in self.scripts_of(branch):
            created = _replay_table_ops(Path(script.path), created)
        return created | {t.name for t in branch.tables()}


_cache: dict[tuple[object, ...], BindScripts] = {}


def bind_scripts(
    settings: Settings, bind: str, plugins: Sequence[Plugin] | None = None
) -> BindScripts:
    """The checked revision scripts of ``bind`` (cached while no revision file changes)."""
    if plugins is None:
        plugins = load_plugins(settings)
    branches = branches_for(bind, plugins)
    key = (bind, tuple((b.label, str(b.folder)) for b in branches), _fingerprint(branches))
    cached = _cache.get(key)
    if cached is None:
        cached = _cache[key] = _load(bind, branches)
    return cached


def clear_cache() -> None:
    """Forget the loaded scripts (and the revisions read without Alembic)."""
    _cache.clear()
    branches_cache_clear()


def _fingerprint(branches: Iterable[Branch]) -> tuple[object, ...]:
    entries: list[object] = []
    for branch in branches:
        for entry in revision_files(branch.folder):
            stat = entry.stat()
            entries.append((entry.path, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(entries))  # type: ignore[type-var]


def _load(bind: str, branches: list[Branch]) -> BindScripts:
    directory = ScriptDirectory(
        str(PACKAGE_DIR),
        file_template=FILE_TEMPLATE,
        version_locations=[str(b.folder) for b in branches] or [str(_NOWHERE)],
        messaging_opts={"quiet": True},
    )
    scripts = BindScripts(bind, branches, directory)
    by_folder = {b.folder.resolve(): b for b in branches}
    try:
        revisions = list(directory.walk_revisions())
    except (CommandError, RevisionError) as exc:
        folders = ", ".join(str(b.folder) for b in branches)
        raise MigrationError(
            f"the migration scripts of database '{bind}' are inconsistent: {exc}",
            hint=f"fix down_revision in the revision files under {folders}",
        ) from None
    except Exception as exc:
        raise _unloadable(bind, exc) from exc
    for script in revisions:
        branch = by_folder.get(Path(script.path).resolve().parent)
        if branch is not None:
            scripts.owner[script.revision] = branch
    for branch in branches:
        heads = _heads_of([s for s in revisions if scripts.owner.get(s.revision) is branch])
        if len(heads) > 1:
            raise MigrationError(
                f"the migrations folder {branch.folder} of {branch.describe()} has "
                f"{len(heads)} heads on branch '{branch.label}' (database '{bind}'): "
                f"{' and '.join(heads)}",
                hint="merge them (make one revision's down_revision the other's id) "
                "or delete one of the files",
            )
        if heads:
            scripts.heads[branch.label] = heads[0]
    return scripts


def _unloadable(bind: str, exc: Exception) -> MigrationError:
    """A revision file that does not even import: name the file and line."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" in {exc.filename}, line {exc.lineno}"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".py")]
        if frames:
            where = f" in {frames[-1].filename}, line {frames[-1].lineno}"
    detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return MigrationError(
        f"a migration script of database '{bind}' cannot be loaded{where}: {detail.rstrip(': ')}",
        hint="fix or remove that revision file",
    )


def _heads_of(scripts: list[Script]) -> list[str]:
    below: set[str] = set()
    for script in scripts:
        down = script.down_revision
        below.update((down,) if isinstance(down, str) else (down or ()))
    return sorted(s.revision for s in scripts if s.revision not in below)


# -- which tables a branch's revisions created ---------------------------------------------

_CREATE, _DROP, _RENAME = "create_table", "drop_table", "rename_table"


def _replay_table_ops(path: Path, names: set[str]) -> set[str]:
    """Apply the create/drop/rename_table calls of a revision's ``upgrade()`` to ``names``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, ValueError):
        return names
    upgrade = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None
    )
    if upgrade is None:
        return names
    names = set(names)
    for node in ast.walk(upgrade):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        op = node.func.attr
        if op not in (_CREATE, _DROP, _RENAME):
            continue
        args = _string_args(node)
        if op == _RENAME and len(args) >= 2:
            names.discard(args[0])
            names.add(args[1])
        elif op == _CREATE and args:
            names.add(args[0])
        elif op == _DROP and args:
            names.discard(args[0])
    return names


_TABLE_KEYWORDS = ("table_name", "old_table_name", "new_table_name")


def _string_args(call: ast.Call) -> list[str]:
    values = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    keywords = {
        k.arg: k.value.value
        for k in call.keywords
        if k.arg in _TABLE_KEYWORDS
        and isinstance(k.value, ast.Constant)
        and isinstance(k.value.value, str)
    }
    if "old_table_name" in keywords or "new_table_name" in keywords:
        return [str(keywords.get("old_table_name", "")), str(keywords.get("new_table_name", ""))]
    if not values and "table_name" in keywords:
        return [str(keywords["table_name"])]
    return values
