"""The statuses of a task run and of a run: the one list the schema, the engine, the
queries, the API and the command line read.

A task run is ``pending`` until an executor starts it (``running``), and ends ``done``,
``cached`` (its result came from the cache), ``failed``, ``skipped`` (it needed a failed
result) or ``interrupted``. A run is ``running`` until it ends ``done``, ``failed`` (some
task run failed or was skipped) or ``interrupted``; a run whose process died is found by
its stale heartbeat and ended ``interrupted``.
"""

from __future__ import annotations

from collections.abc import Mapping

PENDING = "pending"
RUNNING = "running"
DONE = "done"
CACHED = "cached"
FAILED = "failed"
SKIPPED = "skipped"
INTERRUPTED = "interrupted"

#: Every status a task run may have, in the order of its life.
TASK_RUN_STATUSES = (PENDING, RUNNING, DONE, CACHED, FAILED, SKIPPED, INTERRUPTED)
#: Every status a run may have.
RUN_STATUSES = (RUNNING, DONE, FAILED, INTERRUPTED)
#: The order in which task runs counted by status are shown: finished work first.
SHOWN_ORDER = (DONE, CACHED, RUNNING, PENDING, FAILED, SKIPPED, INTERRUPTED)

#: Task-run statuses that never change again.
FINAL = frozenset({DONE, CACHED, FAILED, SKIPPED, INTERRUPTED})
#: Task-run statuses of work still under way (what a dead run leaves behind).
UNFINISHED = frozenset({PENDING, RUNNING})


def run_status(counts: Mapping[str, int], interrupted: bool = False) -> str:
    """A finished run's status from its task runs counted by status."""
    if interrupted:
        return INTERRUPTED
    if counts.get(FAILED, 0) or counts.get(SKIPPED, 0):
        return FAILED
    return DONE
