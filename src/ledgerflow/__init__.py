"""ledgerflow: data pipelines whose database is first-class."""

from ledgerflow.engine import (
    Call,
    Explanation,
    Failure,
    RunObserver,
    RunResult,
    Task,
    context,
    execute,
    explain,
    run,
    task,
)
from ledgerflow.errors import LedgerflowError
from ledgerflow.provenance.ledger import Ledger
from ledgerflow.values import File

__version__ = "0.1.0"

__all__ = [
    "Call",
    "Explanation",
    "Failure",
    "File",
    "Ledger",
    "LedgerflowError",
    "RunObserver",
    "RunResult",
    "Task",
    "__version__",
    "context",
    "execute",
    "explain",
    "run",
    "task",
]
