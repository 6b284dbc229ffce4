"""Executors run task calls for the scheduler: ``local``, ``threads``, ``processes``."""

from ledgerflow.executors.base import (
    EXECUTORS,
    ErrorInfo,
    Executor,
    Job,
    Outcome,
    WorkerEnv,
    executor_class,
    get_executor,
    register_executor,
)

__all__ = [
    "EXECUTORS",
    "ErrorInfo",
    "Executor",
    "Job",
    "Outcome",
    "WorkerEnv",
    "executor_class",
    "get_executor",
    "register_executor",
]
