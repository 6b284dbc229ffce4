"""A node of the run graph: one lazy call and what the scheduler knows about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledgerflow.engine.task import Call, Task
from ledgerflow.ledger.status import (
    CACHED,
    DONE,
    FAILED,
    FINAL,
    INTERRUPTED,
    RUNNING,
    SKIPPED,
)

# Scheduler-side phases of a node (the task run's own status is in ``row["status"]``).
WAITING = "waiting"  # some argument is still a pending call
READY = "ready"  # arguments known: cache check next
FOLLOWING = "following"  # waits for an identical call of this run
PARKED = "parked"  # another run computes it (holds its claim): waits for its cache entry
QUEUED = "queued"  # task run pending: to be submitted
SUBMITTED = "submitted"  # handed to an in-process executor that has not started it yet
EXPANDING = "expanding"  # its task returned calls; waiting for them
HAS_VALUE = frozenset({DONE, CACHED})

#: The status a progress display shows for a scheduler phase.
STATUS_OF = {
    WAITING: "pending",
    READY: "pending",
    FOLLOWING: "pending",
    PARKED: "pending",
    QUEUED: "pending",
    SUBMITTED: "pending",
    RUNNING: "running",
    EXPANDING: "running",
    DONE: DONE,
    CACHED: CACHED,
    FAILED: FAILED,
    SKIPPED: SKIPPED,
    INTERRUPTED: INTERRUPTED,
}


class _Unloaded:
    """The value of a cached call not read yet (its hash is known)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not loaded>"


UNLOADED: Any = _Unloaded()


@dataclass(frozen=True, slots=True, repr=False)
class StoredResult:
    """A task's result that its worker recorded itself; it travels instead of the value.

    ``rows`` are the ``lf_value`` rows :meth:`Values.record` makes (the result's own first,
    then its elements'), their large bytes already in the value store and each signed;
    ``edges`` and ``files`` the ``lf_value_edge`` and ``lf_file`` rows. Small: a reference.
    """

    digest: str
    rows: tuple[tuple[Any, ...], ...]
    edges: tuple[tuple[str, str, str], ...] = ()
    files: tuple[tuple[Any, ...], ...] = ()

    @property
    def size(self) -> int:
        """The size of the stored result's encoded bytes."""
        return int(self.rows[0][4])

    @property
    def preview(self) -> str:
        return str(self.rows[0][3])

    def __repr__(self) -> str:
        return self.preview  # what a failure's arguments show


def unread(value: Any) -> bool:
    """Whether a node's value is still to be read: a cached one, or one a worker stored."""
    return value is UNLOADED or type(value) is StoredResult


class Node:
    """One call in a run, from discovery to its final value (or failure)."""

    __slots__ = (
        "arg_hashes",
        "args_hash",
        "attempt",
        "awaiting",
        "call",
        "call_hash",
        "children",
        "dependents",
        "expected_by",
        "followers",
        "key",
        "miss_reason",
        "parent",
        "phase",
        "resolved",
        "returned",
        "row",
        "task",
        "task_hash",
        "value",
        "value_hash",
        "waiting",
    )  # fmt: skip

    def __init__(self, call: Call, task_hash: str, parent: Node | None) -> None:
        self.call = call
        self.task: Task[Any, Any] = call.task
        self.task_hash = task_hash
        self.parent = parent
        self.phase = WAITING
        self.row: dict[str, Any] | None = None
        self.waiting = 0
        self.dependents: list[Node] = []
        self.children: list[Node] = []
        self.awaiting = 0
        self.expected_by: Node | None = None
        self.returned: Any = None
        self.resolved: tuple[Any, ...] = ()
        self.arg_hashes: tuple[str, ...] = ()
        self.args_hash = ""
        self.key: tuple[str, str] | None = None
        self.value: Any = None
        self.value_hash: str | None = None
        self.call_hash: str | None = None
        self.attempt = 1
        self.followers: list[Node] = []
        self.miss_reason: str | None = None

    @property
    def final(self) -> bool:
        return self.phase in FINAL

    def describe(self) -> str:
        return f"{self.task.fullname}({arguments_preview(self)})"

    def __repr__(self) -> str:
        return f"<Node {self.describe()} {self.phase}>"


def arguments_preview(node: Node, limit: int = 200) -> str:
    """``a=1, b=[1, 2, 3]`` from the resolved arguments (or the lazy ones)."""
    from ledgerflow.values import preview

    values = node.resolved or node.call.values
    parts = []
    for name, value in zip(node.task.param_names, values):
        text = f"<{value.task.name}(...)>" if isinstance(value, Call) else preview(value, 60)
        parts.append(f"{name}={text}")
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Relay:
    """Lets a second parent wait for a call another parent returned first."""

    __slots__ = ("parent",)
    final = False

    def __init__(self, parent: Node) -> None:
        self.parent = parent

    def notify(self, scheduler: Any) -> None:
        parent = self.parent
        if parent.phase is EXPANDING:
            parent.awaiting -= 1
            if parent.awaiting == 0:
                scheduler._finish_expanded(parent)
