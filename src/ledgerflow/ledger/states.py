"""The life of a task run and of a run: which status may follow which."""

from __future__ import annotations

PENDING = "pending"
RUNNING = "running"
DONE = "done"
CACHED = "cached"
FAILED = "failed"
SKIPPED = "skipped"
INTERRUPTED = "interrupted"

#: Task-run statuses that never change again.
FINAL = frozenset({DONE, CACHED, FAILED, SKIPPED, INTERRUPTED})
#: Task-run statuses of work still under way (what a dead run leaves behind).
UNFINISHED = frozenset({PENDING, RUNNING})

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({RUNNING, CACHED, SKIPPED, INTERRUPTED, FAILED}),
    RUNNING: frozenset({DONE, FAILED, SKIPPED, INTERRUPTED}),
    DONE: frozenset(),
    CACHED: frozenset(),
    FAILED: frozenset(),
    SKIPPED: frozenset(),
    INTERRUPTED: frozenset(),
}

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RUNNING: frozenset({DONE, FAILED, INTERRUPTED}),
    DONE: frozenset(),
    FAILED: frozenset(),
    INTERRUPTED: frozenset(),
}

def can_move(current: str, new: str) -> bool:
    """Whether a task run may go from ``current`` to ``new``."""
    return new in TRANSITIONS.get(current, frozenset())


def run_status(counts: dict[str, int], interrupted: bool = False) -> str:
    """A finished run's status from its task-run counts."""
    if interrupted:
        return INTERRUPTED
    if counts.get(FAILED, 0) or counts.get(SKIPPED, 0):
        return FAILED
    return DONE
