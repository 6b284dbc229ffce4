"""The pipeline engine: tasks and lazy calls, the scheduler, runs, the cache."""

from ledgerflow.engine.context import ContextProxy, TaskLogger, context
from ledgerflow.engine.explain import explain
from ledgerflow.engine.results import Explanation, Failure, PlanEntry, RunObserver, RunResult
from ledgerflow.engine.runner import execute, run
from ledgerflow.engine.task import Call, Task, is_task, task

__all__ = [
    "Call",
    "ContextProxy",
    "Explanation",
    "Failure",
    "PlanEntry",
    "RunObserver",
    "RunResult",
    "Task",
    "TaskLogger",
    "context",
    "execute",
    "explain",
    "is_task",
    "run",
    "task",
]
