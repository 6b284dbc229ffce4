"""Executor implementations, one module per name: ``local``, ``threads``, ``processes``.

The contract they implement (jobs, outcomes, the lazy registry) is
:mod:`ledgerflow.engine.executor`; each module here names its class ``EXECUTOR``.
"""
