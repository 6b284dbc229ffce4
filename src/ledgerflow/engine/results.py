"""What a run, a dry run and an explanation give back, and the observer a run reports to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class Failure:
    """A task call that failed: which task, on which arguments, with which exception."""

    task_name: str
    arguments_preview: str
    exception_type: str
    message: str
    traceback: str
    task_run_id: str | None = None

    def render(self) -> str:
        """One readable block: ``task(args)``, then ``Type: message``."""
        head = f"{self.task_name}({self.arguments_preview})"
        return f"{head}\n  {self.exception_type}: {self.message}"


@dataclass(frozen=True)
class PlanEntry:
    """One call of a dry run: what it would do."""

    task_name: str
    arguments_preview: str
    status: Literal["cached", "run"]
    reason: str | None = None


class Deferred:
    """A value read only when first asked for (see :class:`RunResult`)."""

    __slots__ = ()

    def load(self) -> Any:
        raise NotImplementedError

    def preview(self, limit: int) -> str:
        """A short preview of the value, without reading it."""
        raise NotImplementedError


class _ReadOnFirstUse:
    """The ``value`` of a :class:`RunResult`: a :class:`Deferred` one is read on first use."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, result: Any, owner: type | None = None) -> Any:
        if result is None:
            return None  # the dataclass field's default
        value = result.__dict__.get(self.slot)
        if isinstance(value, Deferred):
            value = result.__dict__[self.slot] = value.load()
        return value

    def __set__(self, result: Any, value: Any) -> None:
        result.__dict__[self.slot] = value


@dataclass
class RunResult:
    """The outcome of :func:`ledgerflow.engine.execute`.

    ``value`` is the run's value. When it is the result of one call that a Dask worker
    wrote to the value store itself (a large one), it is read from there (its signature
    checked) the first time ``value`` is used, not before.
    """

    run_id: str | None
    status: str  # done | failed | interrupted | planned (dry run)
    value: Any = _ReadOnFirstUse()
    failures: list[Failure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0
    plan: list[PlanEntry] | None = None
    #: The signal that interrupted the run (``signal.SIGTERM``...); None after a plain Ctrl-C
    #: from another thread, and for runs that were not interrupted.
    signal: int | None = None
    #: One line per cached result that was not used because it failed its check (changed
    #: outside ledgerflow, or pickled by a writer not in ``cache.trust``): computed again.
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "planned")

    def value_preview(self, limit: int = 120) -> str | None:
        """A short preview of ``value`` (None when there is none), made without reading a
        value that is still in the value store."""
        value = self.__dict__.get("_value")
        if isinstance(value, Deferred):
            return value.preview(limit)
        if value is None:
            return None
        from ledgerflow.values.preview import preview

        return preview(value, limit)

    def summary(self) -> str:
        parts = ", ".join(f"{n} {status}" for status, n in self.counts.items() if n)
        run = f"run {self.run_id}" if self.run_id else "dry run"
        return f"{run} {self.status} in {self.duration:.2f}s ({parts or 'no tasks'})"


@dataclass(frozen=True)
class Explanation:
    """Why a call would come from the cache or run again."""

    task_name: str
    status: Literal["cached", "run"]
    reasons: list[str]

    def render(self) -> str:
        lines = [f"{self.task_name}: {self.status}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        return "\n".join(lines)


@runtime_checkable
class RunObserver(Protocol):
    """Receives a run's progress (a progress display, a test, a notifier)."""

    def run_started(self, run_id: str, entry: str) -> None: ...

    def counts_changed(self, counts: dict[str, int], elapsed: float) -> None: ...

    def task_failed(self, failure: Failure) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...
