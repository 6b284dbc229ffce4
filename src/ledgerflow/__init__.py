"""ledgerflow: data pipelines whose database is first-class."""

from ledgerflow.errors import LedgerflowError

__version__ = "0.1.0"

__all__ = ["LedgerflowError", "__version__"]
