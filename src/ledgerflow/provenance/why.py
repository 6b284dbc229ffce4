"""Why a recorded task run executed or came from the cache, told from the ledger alone.

The same questions ``explain`` asks of a call about to run, asked of one that ran: was its
result cached (and from which run), or did it execute because the task's code changed, an
argument changed, or nothing like it had run before. Nothing is imported or executed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerflow.ledger.schema import Argument, TaskRun, Value


def _arguments(session: Session, args_hash: str) -> dict[str, tuple[str, str]]:
    rows = session.execute(
        select(Argument.position, Argument.key, Argument.value_hash, Value.preview)
        .join(Value, Value.hash == Argument.value_hash, isouter=True)
        .where(Argument.args_hash == args_hash)
    ).all()
    return {key or f"#{position}": (value_hash, preview or value_hash[:8])
            for position, key, value_hash, preview in rows}


def _earlier(session: Session, tr: TaskRun, **same: object) -> TaskRun | None:
    """The latest task run of an earlier run that succeeded before ``tr`` with the same
    ``same`` columns (the same task name unless the task hash is given: it names the task
    already). Other calls of the same run are not compared: they ran beside it."""
    if "args_hash" in same:
        # ``status || ''`` keeps the planner on the (selective) arguments-hash index rather
        # than scanning every finished task run by status and time.
        stmt = select(TaskRun).where((TaskRun.status + "").in_(("done", "cached")))
    else:
        # Walk the executed task runs back in time from this one (status and time index).
        stmt = select(TaskRun).where(TaskRun.status == "done")
    stmt = stmt.where(TaskRun.run_id != tr.run_id)
    if "task_hash" not in same:
        stmt = stmt.where(TaskRun.task_name == tr.task_name)
    for column, value in same.items():
        stmt = stmt.where(getattr(TaskRun, column) == value)
    if tr.started_at is not None:
        stmt = stmt.where(TaskRun.started_at < tr.started_at)
    return session.scalars(stmt.order_by(TaskRun.started_at.desc()).limit(1)).first()


def why(session: Session, task_run_id: str) -> str:
    """One or two sentences: why this task run executed, came from the cache, or did not run."""
    tr = session.get(TaskRun, task_run_id)
    if tr is None:
        return "no such task run"
    if tr.status == "cached":
        source = f" of run {tr.cached_from[:8]}" if tr.cached_from else ""
        return f"from the cache{source}: the same code had already run on the same arguments"
    if tr.status == "skipped":
        return "not run: a task run it needed failed or was interrupted"
    if tr.status == "pending":
        return "not started yet"
    same = _earlier(session, tr, task_hash=tr.task_hash, args_hash=tr.args_hash)
    if same is not None:
        return (f"executed although run {same.run_id[:8]} had made this call: its cache entry was "
                "cleared, or the task does not cache")
    other_code = _earlier(session, tr, args_hash=tr.args_hash)
    if other_code is not None:
        return (f"executed: the task's code changed since run {other_code.run_id[:8]} "
                f"({other_code.task_hash[:8]} -> {tr.task_hash[:8]})")
    before = _earlier(session, tr, task_hash=tr.task_hash)
    if before is None:
        return "executed: this task had never run before with this code"
    old, new = _arguments(session, before.args_hash), _arguments(session, tr.args_hash)
    changes = [f"argument '{name}' changed ({old[name][1]} -> {new[name][1]})"
               for name in new if name in old and old[name][0] != new[name][0]]
    changes += [f"new argument '{name}'" for name in new if name not in old]
    changes += [f"argument '{name}' no longer given" for name in old if name not in new]
    return "executed: " + ("; ".join(changes) or "its arguments differ") + \
        f" (compared with run {before.run_id[:8]})"
