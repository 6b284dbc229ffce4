"""The dashboard (``ledgerflow dashboard``): a read-only web view of the ledger, built on
:mod:`ledgerflow.api`. Needs ``pip install ledgerflow[web]``; see docs/dashboard.md."""
