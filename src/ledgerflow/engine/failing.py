"""How the scheduler fails a call: retries, failure records, and skipping what needs it.

A mixin of :class:`ledgerflow.engine.scheduler.Scheduler`, which provides the recorder,
the observer, the failures list and the node phase helpers it uses.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ledgerflow.engine import node as st
from ledgerflow.engine.executor import ErrorInfo
from ledgerflow.engine.node import Node, Relay, arguments_preview
from ledgerflow.engine.results import Failure

if TYPE_CHECKING:
    from ledgerflow.engine.results import RunObserver
    from ledgerflow.ledger.recorder import Recorder


class Failing:
    recorder: Recorder
    observer: RunObserver | None
    failures: list[Failure]
    runnable: Any

    def _set_phase(self, node: Node, phase: str) -> None:
        raise NotImplementedError

    def _ensure_row(self, node: Node, status: str) -> dict[str, Any]:
        raise NotImplementedError

    def _release_claim(self, node: Node) -> None:
        raise NotImplementedError

    def _retry(self, node: Node, error: ErrorInfo) -> None:
        row = node.row
        assert row is not None
        self._error_fields(row, error, "failed")
        self.recorder.task_run_changed(row)
        node.attempt += 1
        node.row = None
        self._set_phase(node, st.QUEUED)
        self._ensure_row(node, "pending")
        self.runnable.append(node)

    @staticmethod
    def _error_fields(row: dict[str, Any], error: ErrorInfo, status: str) -> None:
        row["status"] = status
        row["exception_type"] = error.type[:255]
        row["exception_message"] = error.message
        row["traceback"] = error.traceback
        if row["ended_at"] is None:
            row["ended_at"] = time.time()

    def _fail(self, node: Node, error: ErrorInfo) -> None:
        row = self._ensure_row(node, st.FAILED)
        self._error_fields(row, error, st.FAILED)
        self.recorder.task_run_changed(row)
        self._set_phase(node, st.FAILED)
        self._release_claim(node)  # another run may compute it (or fail the same way)
        failure = Failure(
            node.task.fullname, arguments_preview(node), error.type, error.message,
            error.traceback, row["id"],
        )  # fmt: skip
        self.failures.append(failure)
        if self.observer is not None:
            self.observer.task_failed(failure)
        self._cascade(node)

    def _skip(self, node: Node, cause: Node) -> None:
        if node.final:
            return
        row = self._ensure_row(node, st.SKIPPED)
        row["status"] = st.SKIPPED
        row["exception_message"] = f"needs the result of {cause.describe()}, which {cause.phase}"
        row["ended_at"] = time.time()
        self.recorder.task_run_changed(row)
        self._set_phase(node, st.SKIPPED)
        self._release_claim(node)

    def _cascade(self, start: Node) -> None:
        """Skip every call that needs the result of ``start`` (which has none)."""
        queue = deque([start])
        while queue:
            node = queue.popleft()
            waiting = [*node.dependents, *node.followers]
            if node.expected_by is not None:
                waiting.append(node.expected_by)
            node.dependents = []
            node.followers = []
            for other in waiting:
                if isinstance(other, Relay):
                    other = other.parent
                if not other.final:
                    self._skip(other, node)
                    queue.append(other)
