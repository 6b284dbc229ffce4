"""``explain``: would this call come from the cache, and if not, why not?

The call is compared with the latest cached call of the same task (same code if there is
one, else any earlier version): new code (which function), a new version, which argument
changed, which file changed, or never run at all.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ledgerflow.engine.results import Explanation
from ledgerflow.engine.task import Call
from ledgerflow.errors import UsageError
from ledgerflow.values import File, preview

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ledgerflow.config.settings import Settings
    from ledgerflow.engine.plan import PlanNode


def explain(expr: Any, *, config: Any = None, settings: Settings | None = None) -> Explanation:
    """Why the call ``expr`` would (or would not) come from the cache."""
    from ledgerflow.engine.plan import Planner
    from ledgerflow.engine.workspace import (
        ensure_ledger,
        open_workspace,
        resolve_settings,
        task_surroundings,
    )
    from ledgerflow.ledger.heartbeat import reap_stale_runs

    if not isinstance(expr, Call):
        raise UsageError(
            f"explain needs one task call, got {type(expr).__name__}",
            hint="e.g. explain(compute(3, multiplier=2))",
        )
    settings = resolve_settings(config, settings)
    ensure_ledger(settings)
    with open_workspace(settings) as space:
        reap_stale_runs(space.engine)
        with task_surroundings(settings):
            planner = Planner(space.values(), space.reader, frozenset(), space.written())
            planner.plan(expr)
            node = planner.nodes[id(expr)]
            with space.engine.connect() as conn:
                return _explain_node(conn, node)


def _explain_node(conn: Connection, node: PlanNode) -> Explanation:
    name = node.task.fullname
    if node.status == "cached":
        run = f" of run {node.hit_run}" if node.hit_run else ""
        return Explanation(name, "cached", [f"the result{run} is in the cache and still valid"])
    if not node.task.cache:
        return Explanation(name, "run", ["caching is off for this task (cache=False)"])
    if node.reason and node.reason.startswith("needs "):
        return Explanation(name, "run", [f"an argument {node.reason}"])
    if node.reason and node.reason != "no cached result":
        return Explanation(name, "run", [node.reason])
    return Explanation(name, "run", _history_reasons(conn, node))


def _history_reasons(conn: Connection, node: PlanNode) -> list[str]:
    from sqlalchemy import select

    from ledgerflow.ledger.schema import CacheEntry, TaskDef

    task = node.task
    defs = {
        row.hash: row
        for row in conn.execute(
            select(TaskDef.hash, TaskDef.version, TaskDef.source, TaskDef.helpers).where(
                TaskDef.namespace == task.namespace, TaskDef.name == task.name
            )
        )
    }
    if not defs:
        return ["never run"]
    current = task.hash
    entries = conn.execute(
        select(CacheEntry.task_hash, CacheEntry.args_hash)
        .where(CacheEntry.task_hash.in_(list(defs)))
        .order_by(CacheEntry.created_at.desc())
    ).all()
    if not entries:
        return ["never run to completion (no cached result of any version)"]
    same_code = [e for e in entries if e.task_hash == current]
    previous = same_code[0] if same_code else entries[0]
    reasons = []
    if previous.task_hash != current:
        reasons += _code_reasons(node, defs[previous.task_hash])
    reasons += _argument_reasons(conn, node, previous.args_hash)
    return reasons or ["no cached result for these arguments"]


def _code_reasons(node: PlanNode, before: Any) -> list[str]:
    task = node.task
    code = task.code
    reasons = []
    if (before.version or None) != task.version:
        reasons.append(f"version changed ({before.version} -> {task.version})")
    if before.source != code.source:
        reasons.append(f"code changed: task {task.fullname}")
    old_helpers: dict[str, str] = json.loads(before.helpers) if before.helpers else {}
    for helper in sorted(set(old_helpers) | set(code.helpers)):
        old, new = old_helpers.get(helper), code.helpers.get(helper)
        if old == new:
            continue
        if old is None:
            reasons.append(f"code changed: now uses {helper}")
        elif new is None:
            reasons.append(f"code changed: no longer uses {helper}")
        else:
            reasons.append(f"code changed: helper {helper}")
    return reasons or ["code changed"]


def _argument_reasons(conn: Connection, node: PlanNode, args_hash: str) -> list[str]:
    from sqlalchemy import select

    from ledgerflow.ledger.schema import Argument, FileRow, Value

    rows = conn.execute(
        select(Argument.key, Argument.value_hash, Value.preview, FileRow.path)
        .join(Value, Value.hash == Argument.value_hash)
        .outerjoin(FileRow, FileRow.hash == Argument.value_hash)
        .where(Argument.args_hash == args_hash)
        .order_by(Argument.position)
    ).all()
    before = {row.key: row for row in rows}
    now = dict(zip(node.task.param_names, zip(node.arg_hashes, node.resolved)))
    reasons = []
    for name, (digest, value) in now.items():
        old = before.get(name)
        if old is None:
            reasons.append(f"argument '{name}' is new")
        elif old.value_hash != digest:
            reasons.append(_changed(name, old, value))
    for name in before:
        if name not in now:
            reasons.append(f"argument '{name}' was removed")
    return reasons


def _changed(name: str, old: Any, value: Any) -> str:
    if isinstance(value, File) and old.path is not None and old.path == value.as_posix():
        return f"file changed: {value.as_posix()}"
    return f"argument '{name}' changed ({old.preview} -> {preview(value)})"
