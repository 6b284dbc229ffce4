"""ledgerflow: data pipelines whose database is first-class.

The public names are imported on first use, so ``import ledgerflow`` (and ``from ledgerflow
import task, File, context``) does not load SQLAlchemy, Alembic or rich.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledgerflow._lazy import lazy_names
from ledgerflow._version import __version__

if TYPE_CHECKING:
    from ledgerflow.api.running import execute, run
    from ledgerflow.engine.context import context
    from ledgerflow.engine.explain import explain
    from ledgerflow.engine.results import Explanation, Failure, RunObserver, RunResult
    from ledgerflow.engine.task import Call, Task, task
    from ledgerflow.errors import LedgerflowError
    from ledgerflow.provenance.ledger import Ledger
    from ledgerflow.values.file import File

#: public name -> the module that defines it
_HOMES: dict[str, str] = {
    "Call": "ledgerflow.engine.task",
    "Explanation": "ledgerflow.engine.results",
    "Failure": "ledgerflow.engine.results",
    "File": "ledgerflow.values.file",
    "Ledger": "ledgerflow.provenance.ledger",
    "LedgerflowError": "ledgerflow.errors",
    "RunObserver": "ledgerflow.engine.results",
    "RunResult": "ledgerflow.engine.results",
    "Task": "ledgerflow.engine.task",
    "context": "ledgerflow.engine.context",
    "execute": "ledgerflow.api.running",
    "explain": "ledgerflow.engine.explain",
    "run": "ledgerflow.api.running",
    "task": "ledgerflow.engine.task",
}

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


__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)

