"""The branches of each database and the revisions their files declare, read without Alembic.

A *branch* is owned either by the framework (label ``ledgerflow``, the ``lf_`` tables, files
in ``ledgerflow/migrations/versions/``, bind ``default`` only) or by a plugin (label = its
dotted name, files in ``<plugin>/migrations/`` for bind ``default`` and
``<plugin>/migrations/<bind>/`` for the others).

:func:`known_revisions` reads each revision file's ``revision`` and ``down_revision``
assignments as text, which is all the check before every run needs (which revision belongs
to which branch, and each branch's head), so that check never imports Alembic. Files it
cannot read that way (computed ids, several heads, a ``down_revision`` nobody declares) make
it return None, and the caller loads the scripts with Alembic, which reports the problem
exactly. A test compares both readings of the framework's and plugins' folders.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ledgerflow.config.settings import DEFAULT_BIND, Settings
from ledgerflow.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import Table

    from ledgerflow.db.plugins import Plugin

FRAMEWORK_BRANCH = "ledgerflow"
PACKAGE_DIR = Path(__file__).resolve().parent
VERSIONS_DIR = PACKAGE_DIR / "versions"
VERSION_TABLE = "alembic_version"
LEDGER_PREFIX = "lf_"


@dataclass(frozen=True)
class Branch:
    """The revisions of one owner (the framework or a plugin) in one bind."""

    label: str
    bind: str
    folder: Path
    plugin: Plugin | None = None

    @property
    def is_framework(self) -> bool:
        return self.plugin is None

    def describe(self) -> str:
        return FRAMEWORK_BRANCH if self.plugin is None else f"plugin {self.label}"

    def tables(self) -> list[Table]:
        """The tables this branch's models define, in dependency order."""
        if self.plugin is None:
            from ledgerflow.ledger.schema import LedgerBase

            return list(LedgerBase.metadata.sorted_tables)
        from ledgerflow.db.model import Model
        from ledgerflow.db.naming import bind_of

        return [
            table
            for table in Model.metadata.sorted_tables
            if self.plugin.owns_module(table.info.get("module")) and bind_of(table) == self.bind
        ]

    def owns_name(self, name: str) -> bool:
        """Whether a table name that is in no model may still be this branch's (framework only)."""
        return self.plugin is None and name.startswith(LEDGER_PREFIX)


def branches_for(bind: str, plugins: Sequence[Plugin]) -> list[Branch]:
    branches = [Branch(FRAMEWORK_BRANCH, bind, VERSIONS_DIR)] if bind == DEFAULT_BIND else []
    branches += [Branch(p.name, bind, p.migrations_dir(bind), p) for p in plugins]
    return branches


def check_bind(settings: Settings, bind: str) -> None:
    if bind not in settings.databases:
        known = ", ".join(sorted(settings.databases))
        raise ConfigError(
            f"{settings.path or 'ledgerflow.yml'}: no database '{bind}' under databases: "
            f"(configured: {known})",
            hint="pass one of the configured names with --bind",
        )


def binds_of(settings: Settings, bind: str | None) -> list[str]:
    """``[bind]`` after checking it exists, or every configured bind (``default`` first)."""
    if bind is not None:
        check_bind(settings, bind)
        return [bind]
    return sorted(settings.databases, key=lambda name: (name != DEFAULT_BIND, name))


def revision_files(folder: Path) -> Iterable[os.DirEntry[str]]:
    """The files of a folder that Alembic reads as revisions (``*.py`` but ``__init__.py``)."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        entry
        for entry in entries
        if entry.name.endswith(".py")
        and not entry.name.startswith((".#", "__init__"))
        and entry.is_file()
    ]


@dataclass
class KnownRevisions:
    """Which branch each revision of a bind belongs to, and the head of each branch."""

    bind: str
    branches: list[Branch]
    owner: dict[str, Branch] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)  # branch label -> head revision


_ASSIGNMENT = re.compile(
    r"^(?P<name>revision|down_revision)\s*(?::[^=\n]*)?=\s*(?P<value>[^\n#]+)", re.MULTILINE
)


def declared_revision(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``(revision, down_revisions)`` from a revision file's top-level assignments.

    None unless both are literals (strings, None, a tuple or list of strings) assigned once.
    """
    found: dict[str, list[str]] = {}
    for match in _ASSIGNMENT.finditer(text):
        found.setdefault(match.group("name"), []).append(match.group("value").strip())
    if len(found.get("revision", ())) != 1 or len(found.get("down_revision", ())) != 1:
        return None
    try:
        revision = ast.literal_eval(found["revision"][0])
        down = ast.literal_eval(found["down_revision"][0])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(revision, str) or not revision:
        return None
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
        return revision, tuple(down)
    return None


_cache: dict[tuple[object, ...], KnownRevisions | None] = {}


def known_revisions(bind: str, branches: list[Branch]) -> KnownRevisions | None:
    """The revisions the branches' files declare, or None when only Alembic can tell.

    Cached per process while no revision file of the branches changes (name, size, mtime).
    """
    files = [(branch, entry) for branch in branches for entry in revision_files(branch.folder)]
    key = (
        bind,
        tuple((b.label, str(b.folder)) for b in branches),
        tuple(sorted((e.path, e.stat().st_mtime_ns, e.stat().st_size) for _, e in files)),
    )
    if key not in _cache:
        _cache[key] = _read(bind, branches, files)
    return _cache[key]


def clear_cache() -> None:
    _cache.clear()


def _read(
    bind: str, branches: list[Branch], files: list[tuple[Branch, os.DirEntry[str]]]
) -> KnownRevisions | None:
    known = KnownRevisions(bind, branches)
    downs: dict[str, tuple[str, ...]] = {}
    for branch, entry in files:
        try:
            text = Path(entry.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        declared = declared_revision(text)
        if declared is None or declared[0] in known.owner:
            return None
        revision, downs[revision] = declared
        known.owner[revision] = branch
    if any(d not in known.owner for down in downs.values() for d in down):
        return None
    for branch in branches:
        mine = [rev for rev, owner in known.owner.items() if owner is branch]
        below = {d for rev in mine for d in downs[rev]}
        heads = [rev for rev in mine if rev not in below]
        if len(heads) > 1 or (mine and not heads) or not _reaches(heads, mine, downs):
            return None
        if heads:
            known.heads[branch.label] = heads[0]
    return known


def _reaches(heads: list[str], mine: list[str], downs: dict[str, tuple[str, ...]]) -> bool:
    """Whether every revision of the branch lies below its head (no cycle, no orphan)."""
    seen: set[str] = set()
    stack = list(heads)
    while stack:
        revision = stack.pop()
        if revision not in seen:
            seen.add(revision)
            stack.extend(downs[revision])
    return seen.issuperset(mine)
