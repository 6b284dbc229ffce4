"""Comparing models with a database: ``make_migrations`` writes the difference, ``check`` lists it.

Autogenerate only ever sees one branch's tables (a plugin's, or the framework's), through
Alembic's ``include_name`` / ``include_object`` hooks, so one plugin's change never lands in
another plugin's branch.

Which tables of the database belong to a branch: the tables its models define now, plus
every table its revision scripts created (``op.create_table``) and did not drop or rename
away, found by reading the ``upgrade()`` functions of the branch's revision files from base
to head (see :meth:`~ledgerflow.migrations.scripts.BindScripts.owned_table_names`). That is
how a table whose model was deleted is detected as dropped, without any bookkeeping table in
the database; the framework also owns any ``lf_`` table. A table created by hand (raw SQL in a
revision) is not known to be the plugin's and is never dropped by autogenerate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.util import rev_id
from sqlalchemy import Connection, MetaData, Table, inspect

from ledgerflow.config.settings import Settings
from ledgerflow.db.database import Database
from ledgerflow.db.model import DEFAULT_BIND, Model
from ledgerflow.db.plugins import load_plugins
from ledgerflow.errors import SchemaOutdatedError, SchemaTooNewError, UsageError
from ledgerflow.migrations import scripts as scripts_module
from ledgerflow.migrations.describe import describe_ops
from ledgerflow.migrations.heads import compare_heads
from ledgerflow.migrations.renames import apply_renames
from ledgerflow.migrations.results import NewRevision
from ledgerflow.migrations.scripts import (
    FRAMEWORK_BRANCH,
    VERSION_TABLE,
    BindScripts,
    Branch,
    bind_scripts,
    binds_of,
    check_bind,
)
from ledgerflow.migrations.status import reading_role


def _metadata_of(branches: Sequence[Branch]) -> list[MetaData]:
    result: list[MetaData] = []
    for branch in branches:
        if branch.is_framework:
            from ledgerflow.ledger.schema import LedgerBase

            metadata = LedgerBase.metadata
        else:
            metadata = Model.metadata
        if metadata not in result:
            result.append(metadata)
    return result


def _filters(scripts: BindScripts, branches: Sequence[Branch]) -> dict[str, Callable[..., bool]]:
    """``include_name`` / ``include_object`` hooks that see only ``branches``' tables."""
    owned: set[str] = set()
    model_tables: set[Table] = set()
    for branch in branches:
        owned |= scripts.owned_table_names(branch)
        model_tables.update(branch.tables())

    def owned_name(name: str | None) -> bool:
        return name is not None and (name in owned or any(b.owns_name(name) for b in branches))

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return owned_name(name) if type_ == "table" else True

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ != "table":
            return True
        if name == VERSION_TABLE:
            return False
        return owned_name(name) if reflected else obj in model_tables

    return {"include_name": include_name, "include_object": include_object}


def _context(connection: Connection, scripts: BindScripts, branches: Sequence[Branch]) -> MigrationContext:
    return MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "render_as_batch": True,
            "version_table": VERSION_TABLE,
            "target_metadata": _metadata_of(branches),
            **_filters(scripts, branches),
        },
    )


def _current(connection: Connection, context: MigrationContext) -> tuple[str, ...] | None:
    heads = context.get_current_heads()
    if heads or inspect(connection).has_table(VERSION_TABLE):
        return tuple(heads)
    return None


def make_migrations(
    settings: Settings,
    plugin: str,
    message: str,
    *,
    bind: str = DEFAULT_BIND,
    renames: bool = True,
) -> NewRevision:
    """Write the revision that brings ``plugin``'s tables in ``bind`` from the database to its models.

    The database must be at the head of the plugin's branch and of the ``ledgerflow``
    branch (run ``upgrade`` first); other plugins' branches do not matter, since only this
    plugin's tables are compared. Nothing is written when nothing differs
    (``NewRevision.empty``). ``plugin="ledgerflow"`` writes a revision of the framework's own
    ledger tables into the installed package: that is for ledgerflow's developers.
    """
    check_bind(settings, bind)
    if plugin != FRAMEWORK_BRANCH and plugin not in settings.plugins:
        where = settings.path or "the settings"
        listed = ", ".join(settings.plugins) or "none"
        raise UsageError(
            f"plugin '{plugin}' is not listed under plugins: in {where} (listed: {listed})",
            hint=f"add '{plugin}' to plugins: in {where}",
        )
    if not message.strip():
        raise UsageError("make-migrations needs a message (-m) saying what the migration does")
    scripts = bind_scripts(settings, bind, load_plugins(settings))
    branch = scripts.branch(plugin)
    if branch is None:
        raise UsageError(f"the ledgerflow branch lives in database '{DEFAULT_BIND}', not '{bind}'")
    database = Database(settings, role="admin")
    try:
        with database.engine(bind).connect() as connection:
            context = _context(connection, scripts, [branch])
            needed = {branch.label, FRAMEWORK_BRANCH}
            problem = compare_heads(settings, scripts, _current(connection, context), needed)
            if isinstance(problem, SchemaTooNewError):
                raise problem
            if problem is not None:
                raise SchemaOutdatedError(
                    f"cannot make migrations for {branch.describe()}: {problem.message}",
                    hint="run `ledgerflow db upgrade` first, then make-migrations again",
                )
            migration = produce_migrations(context, _metadata_of([branch]))  # type: ignore[arg-type]
            upgrade_ops = migration.upgrade_ops
            assert upgrade_ops is not None
            renamed, warnings = (
                apply_renames(upgrade_ops, connection.dialect) if renames else ([], [])
            )
            operations = describe_ops(upgrade_ops.ops, connection.dialect) + warnings
            if upgrade_ops.is_empty():
                return NewRevision(branch.folder, "", plugin, operations, renamed, True)
            cautions = _not_null_warnings(connection, upgrade_ops)
            upgrades, imports = _render(upgrade_ops, context)
            downgrades, more = _render(upgrade_ops.reverse(), context)
    finally:
        database.dispose()
    new = _write(scripts, branch, message, upgrades, downgrades, imports | more, operations, renamed)
    return replace(new, warnings=cautions)


def _not_null_warnings(connection: Connection, upgrade_ops: ops.UpgradeOps) -> list[str]:
    """A warning for each NOT NULL column without a default added to a table that has rows.

    Such an upgrade fails (the existing rows have no value for it), or on SQLite's batch
    mode copies no row; the user should give a server default or fill the column first.
    """
    found: list[str] = []
    tables = set(inspect(connection).get_table_names())
    quote = connection.dialect.identifier_preparer.quote
    for op in _walk(upgrade_ops):
        if not isinstance(op, ops.AddColumnOp):
            continue
        column = op.column
        if column.nullable or column.server_default is not None or op.table_name not in tables:
            continue
        rows = connection.exec_driver_sql(f"SELECT COUNT(*) FROM {quote(op.table_name)}").scalar()
        if rows:
            found.append(
                f"column {op.table_name}.{column.name} is NOT NULL without a default, and "
                f"{op.table_name} holds {rows} row(s): the upgrade will fail on them. Give it "
                "a server_default, or add it nullable, fill it, then make it NOT NULL"
            )
    return found


def _render(container: ops.OpContainer, context: MigrationContext) -> tuple[str, set[str]]:
    """Python source of the operations, and the imports it needs beyond ``op`` and ``sa``.

    Alembic writes a user-defined column type with its full module path but adds no import
    for it; we add ``import <module>`` so the revision runs as written.
    """
    seen: list[Any] = []

    def spy(type_: str, obj: Any, autogen_context: Any) -> Literal[False]:
        if not seen:
            seen.append(autogen_context)
        if type_ == "type":
            module = type(obj).__module__
            if not module.startswith(("sqlalchemy.", "alembic.", "builtins")):
                autogen_context.imports.add(f"import {module}")
        return False

    for op in _walk(container):
        if isinstance(op, ops.CreateTableOp):
            op.info = {}  # our bind/module bookkeeping is not part of the schema
    code = render_python_code(
        container,  # type: ignore[arg-type]
        render_as_batch=True,
        migration_context=context,
        render_item=spy,
    )
    return code, set(seen[0].imports) if seen else set()


def _walk(container: Any) -> Iterator[Any]:
    for op in container.ops:
        yield op
        if isinstance(op, ops.OpContainer):
            yield from _walk(op)


def _write(
    scripts: BindScripts,
    branch: Branch,
    message: str,
    upgrades: str,
    downgrades: str,
    imports: set[str],
    operations: list[str],
    renamed: list[str],
) -> NewRevision:
    head = scripts.heads.get(branch.label)
    branch.folder.mkdir(parents=True, exist_ok=True)
    script = scripts.directory.generate_revision(
        rev_id(),
        message,
        head=head or "base",
        branch_labels=None if head else [branch.label],
        version_path=str(branch.folder),
        upgrades=upgrades,
        downgrades=downgrades,
        imports="\n".join(sorted(imports)),
    )
    scripts_module.clear_cache()
    assert script is not None
    return NewRevision(Path(script.path), script.revision, branch.label, operations, renamed, False)


def check(settings: Settings, *, bind: str | None = None) -> list[str]:
    """Every difference between the models and the databases, one readable line each.

    Also reports a database that is not at the head of every branch. ``[]`` means in sync.
    """
    plugins = load_plugins(settings)
    lines: list[str] = []
    for name in binds_of(settings, bind):
        scripts = bind_scripts(settings, name, plugins)
        if not scripts.owner and not any(b.tables() for b in scripts.branches):
            continue
        database = Database(settings, role=reading_role(settings, name), read_only=True)
        try:
            with database.engine(name).connect() as connection:
                context = _context(connection, scripts, scripts.branches)
                if scripts.heads:
                    problem = compare_heads(settings, scripts, _current(connection, context))
                    if problem is not None:
                        lines.append(f"{name}: {problem.message}")
                migration = produce_migrations(context, _metadata_of(scripts.branches))  # type: ignore[arg-type]
                assert migration.upgrade_ops is not None
                lines += [
                    f"{name}: models need: {line}"
                    for line in describe_ops(migration.upgrade_ops.ops, connection.dialect)
                ]
        finally:
            database.dispose()
    return lines
