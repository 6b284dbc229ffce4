"""Ctrl-C, SIGTERM and SIGHUP during a run: stop at a safe point, record, exit 128+N.

While a run executes on the main thread, :class:`Interrupts` handles SIGINT, SIGTERM and
SIGHUP (each only when its handler is Python's default: a signal the process ignores, for
example SIGHUP under ``nohup``, stays ignored). A signal never raises in the middle of the
engine's own bookkeeping or of a ledger write: it is noted, and the scheduler stops at its
next turn. Only where the run waits for a task's own code in this thread (the ``local``
executor) does it raise :class:`RunInterrupt` at once, so a long task stops too.

Outside the run's recording the command line makes SIGTERM and SIGHUP raise
:class:`RunInterrupt` at once (:func:`~ledgerflow.errors.stop_signals_interrupt`): before
the run's record exists nothing is left ``running``, and a signal that arrives once the
run's end is recorded is raised with ``after_end`` when the handlers are restored.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ledgerflow.errors import RunInterrupt as RunInterrupt
from ledgerflow.errors import interrupt_on_signal

#: The signals that interrupt a run.
SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupts:
    """The interrupting signals of one run: noted when they arrive, raised where safe."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._raising = 0  # > 0 while a task's own code runs in this thread
        self._previous: dict[int, object] = {}

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle the signals while the block runs (only on the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, signal.default_int_handler, interrupt_on_signal):
                self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            late = self.received if self._raising < 0 else None
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)  # type: ignore[arg-type]
            self._previous.clear()
            if late is not None:  # arrived once the end was recorded: the process gets it
                if signal.getsignal(late) is interrupt_on_signal:  # the command line's
                    raise RunInterrupt(late, after_end=True)
                os.kill(os.getpid(), late)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._raising < 0:  # the run's end is being recorded: act on it afterwards
            if self.received is None:
                self.received = signum
            return
        if self.received is None:
            self.received = signum
        if self._raising > 0:
            raise RunInterrupt(signum)

    @property
    def requested(self) -> bool:
        return self.received is not None

    def check(self) -> None:
        """Raise :class:`RunInterrupt` if a signal arrived (at a point where that is safe)."""
        if self.received is not None and self._raising >= 0:
            raise RunInterrupt(self.received)

    @contextmanager
    def raising(self) -> Iterator[None]:
        """A task's own code runs in this thread: a signal raises in it at once."""
        self.check()
        self._raising += 1
        try:
            yield
        finally:
            self._raising -= 1

    def settle(self, interrupted: bool) -> int | None:
        """The run's outcome is decided. Returns the signal that interrupted it (if
        ``interrupted``); one it did not act on, or that arrives from now on, is sent to the
        process again once the handlers are restored."""
        self._raising = -1
        if not interrupted:
            return None
        received, self.received = self.received, None
        return received
