"""What a run checks before it starts, so that a mistake is one clear error and no run row.

- names given to ``rerun`` must name a task (or a function a task calls) the run can reach,
  or one the ledger has recorded: a typo would otherwise rerun nothing, silently;
- the ``File`` arguments of the entry call must exist (they are inputs: their content is
  hashed before the task runs);
- a database that refuses writes (a read-only SQLite file, a role without INSERT) is reported
  as a :class:`~ledgerflow.errors.DatabaseError`, not as a driver traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ledgerflow.errors import DatabaseError, UsageError

if TYPE_CHECKING:
    from ledgerflow.config.settings import Settings
    from ledgerflow.engine.task import Call, Task
    from ledgerflow.values.file import File

T = TypeVar("T")

#: How deep :func:`check_input_files` looks into lists, tuples and dicts of arguments.
_MAX_DEPTH = 4
#: Driver messages of a database that refuses to be written.
_REFUSALS = ("readonly database", "read-only", "permission denied")


def _nested(expr: Any, kind: type[T], depth: int = 0) -> Iterator[T]:
    """The ``kind`` objects in ``expr``: itself, or nested in lists, tuples, sets, dicts."""
    if isinstance(expr, kind):
        yield expr
    elif depth < _MAX_DEPTH and isinstance(expr, list | tuple | set | frozenset):
        for item in expr:
            yield from _nested(item, kind, depth + 1)
    elif depth < _MAX_DEPTH and isinstance(expr, dict):
        for item in expr.values():
            yield from _nested(item, kind, depth + 1)


def entry_calls(expr: Any) -> Iterator[Call]:
    """The task calls in ``expr`` (a call, or calls nested in lists, tuples, sets, dicts)."""
    from ledgerflow.engine.task import Call

    return _nested(expr, Call)


# -- rerun -------------------------------------------------------------------------------


def _module_tasks(task: Task[Any, Any]) -> list[Task[Any, Any]]:
    import sys

    from ledgerflow.engine.task import is_task

    module = sys.modules.get(getattr(task.func, "__module__", "") or "")
    found = [value for value in vars(module).values() if is_task(value)] if module else []
    return found or [task]


def _recorded_task_names(settings: Settings) -> set[str]:
    """Short and qualified names of every task the ledger knows (empty if it cannot be read)."""
    from sqlalchemy import text

    from ledgerflow.db import Database

    database = Database(settings, read_only=True)
    try:
        with database.engine().connect() as connection:
            rows = connection.execute(text("SELECT DISTINCT namespace, name FROM lf_task_def"))
            names: set[str] = set()
            for namespace, name in rows:
                names.add(name)
                if namespace:
                    names.add(f"{namespace}.{name}")
            return names
    except Exception:  # no ledger yet, or one we may not read: nothing recorded to rerun
        return set()
    finally:
        database.dispose()


def check_rerun(expr: Any, names: Iterable[str], settings: Settings) -> None:
    """A :class:`UsageError` listing the known task names when a ``rerun`` name is unknown.

    Known: the entry tasks and the tasks defined beside them, every function or task their
    code reaches (qualified or short name), and every task recorded in the ledger (only a
    recorded task can have a cached result to ignore).
    """
    wanted = sorted(set(names))
    if not wanted:
        return
    shown: set[str] = set()
    accepted: set[str] = set()
    for call in entry_calls(expr):
        for task in [call.task, *_module_tasks(call.task)]:
            shown.add(task.name)
            accepted.update((task.name, task.fullname))
            for helper in task.code.helpers:
                accepted.update((helper, helper.rpartition(".")[2]))
    unknown = [name for name in wanted if name not in accepted]
    if not unknown:
        return
    recorded = _recorded_task_names(settings)
    unknown = [name for name in unknown if name not in recorded]
    if not unknown:
        return
    listed = sorted(shown | {n for n in recorded if "." not in n})
    plural = "s" if len(unknown) > 1 else ""
    raise UsageError(
        f"--rerun: unknown task name{plural} {', '.join(repr(n) for n in unknown)}; "
        f"known task names: {', '.join(listed) or 'none'}",
        hint="give a task's name (or module.name) as it appears in `ledgerflow log`",
    )


# -- input files -------------------------------------------------------------------------


def _files_in(value: Any) -> Iterator[File]:
    from ledgerflow.values.file import File

    return _nested(value, File)


def check_input_files(expr: Any, directory: Path | None) -> None:
    """A :class:`UsageError` for a ``File`` argument of an entry call that is not a file.

    Relative paths are resolved from ``directory`` (where the run's tasks execute) or, when
    it is None, from the working directory.
    """
    for call in entry_calls(expr):
        for name, value in call.arguments.items():
            for file in _files_in(value):
                path = Path(os.fspath(file))
                where = path if path.is_absolute() or directory is None else directory / path
                if where.is_file():
                    continue
                problem = "is a directory, not a file" if where.is_dir() else "does not exist"
                raise UsageError(
                    f"input file {path} ({where}) {problem}: argument '{name}' of task "
                    f"{call.task.name}",
                    hint="check the path; relative paths are resolved from the directory of "
                    "ledgerflow.yml" if directory is not None else "check the path",
                )


# -- a ledger that refuses writes -----------------------------------------------------


def refused_write(exc: BaseException, settings: Settings) -> DatabaseError | None:
    """A :class:`DatabaseError` when ``exc`` is the ledger refusing a write, else None."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return None
    detail = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    if not any(word in first.lower() for word in _REFUSALS):
        return None
    config = settings.databases.get("default")
    where = config.describe() if config is not None else "the ledger"
    if config is not None and config.dialect == "sqlite":
        hint = (
            f"make {config.path} and its directory writable by this user, or point "
            "databases.default at a writable file"
        )
    else:
        hint = "run with a role that may write the ledger (see `ledgerflow db upgrade`, which grants it)"
    return DatabaseError(f"the ledger ({where}) refused a write: {first}", hint=hint)
