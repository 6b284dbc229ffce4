"""The live progress of a run on the terminal, and the lines printed when it ends.

:class:`RunProgress` is a :class:`~ledgerflow.engine.RunObserver`: the scheduler reports
counts, the display redraws them a few times a second from its own thread, so a run of many
small tasks does not pay for drawing. Without a terminal it only remembers the run id, and
rich is not even imported.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from ledgerflow.api import SHOWN_ORDER
from ledgerflow.cli.output import STATUS_STYLES

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

#: Order of the statuses in the progress line and the summary.
STATES = SHOWN_ORDER
#: Statuses always named in the summary, even at zero.
SUMMARY_ALWAYS = ("done", "cached")
TRACEBACK_LINES = 6


def short_id(run_id: str | None) -> str:
    return (run_id or "?")[:8]


def format_counts(counts: dict[str, int], always: tuple[str, ...] = SUMMARY_ALWAYS) -> str:
    """``"100 done, 0 cached, 2 failed"``: the statuses in a fixed order, zeros left out."""
    parts = [f"{counts.get(s, 0)} {s}" for s in STATES if s in always or counts.get(s)]
    parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in STATES and n]
    return ", ".join(parts)


def summary_line(
    run_id: str, status: str, duration: float, counts: dict[str, int], retried: int = 0
) -> str:
    """``run 3fa2c1d9 done in 1.23 s: 100 done, 0 cached (2 failed attempts retried)``.

    Counts are calls by final state; ``retried`` failed attempts that were retried are named
    apart, so the figures add up with ``ledgerflow log`` (which lists every attempt).
    """
    line = f"run {short_id(run_id)} {status} in {duration:.2f} s: {format_counts(counts)}"
    if retried:
        line += f" ({retried} failed attempt{'s' if retried != 1 else ''} retried)"
    return line


def failure_block(failure: Any) -> str:
    """One readable block for a failed task: call, exception, the last traceback lines.

    The exception's message is shown once, on the second line: the traceback's own
    ``Type: message`` lines are left out (what follows them, such as notes, is kept)."""
    message = [line.rstrip() for line in str(failure.message or "").splitlines()] or [""]
    lines = [f"✗ {failure.task_name}({failure.arguments_preview}) failed",
             f"  {failure.exception_type}: {message[0]}", *("  " + line for line in message[1:] if line.strip())]
    trace = [line for line in (failure.traceback or "").rstrip().splitlines() if line.strip()]
    body = [line for line in trace if not line.startswith("Traceback (most recent")]
    shown = sum(1 for line in message if line.strip()) or 1  # blank lines are not in body
    frames, after = _without_message(body, failure.exception_type, shown)
    tail = frames[-TRACEBACK_LINES:] + after
    if tail:
        lines.append("  traceback (last lines):")
        lines += ["    " + line.rstrip() for line in tail]
    return "\n".join(lines)


def _without_message(body: list[str], exception_type: str, message_lines: int) -> tuple[list[str], list[str]]:
    """A traceback's lines split around its last ``Type: message`` lines (left out): the
    lines before them, and those after them (notes)."""
    name = str(exception_type or "").rsplit(".", 1)[-1]
    for i in range(len(body) - 1, -1, -1):
        line = body[i]
        head = line.split(":", 1)[0]
        if name and not line[:1].isspace() and head.rsplit(".", 1)[-1] == name:
            return body[:i], body[i + message_lines:]
    return body[:-1], []  # no such line found: the last line is the message


class RunProgress:
    """Observer of a run: a live line on a terminal, nothing otherwise.

    ``console`` defaults to one on stderr, made when the live line starts.
    """

    def __init__(
        self, console: Console | None = None, *, live: bool, refresh_per_second: float = 8
    ) -> None:
        self.console = console
        self.run_id: str | None = None
        self.entry: str | None = None
        self.failures: list[Any] = []
        self._counts: dict[str, int] = {}
        self._started = time.monotonic()
        self._spinner: Any = None
        self._wanted = live
        self._refresh = refresh_per_second
        self._live: Live | None = None
        self._showing = False

    # RunObserver -------------------------------------------------------------------------

    def run_started(self, run_id: str, entry: Any) -> None:
        self.run_id = run_id
        self.entry = str(getattr(entry, "name", entry))
        self._started = time.monotonic()
        if self._wanted and self._live is None:
            from rich.console import Console
            from rich.live import Live

            if self.console is None:
                self.console = Console(file=sys.stderr, highlight=False, soft_wrap=True)
            self._live = Live(console=self.console, get_renderable=self._render, transient=True,
                              refresh_per_second=self._refresh, redirect_stdout=False,
                              redirect_stderr=False)
            self._live.start()
            self._showing = True

    def counts_changed(self, counts: dict[str, int], elapsed: float) -> None:
        self._counts = dict(counts)

    def task_failed(self, failure: Any) -> None:
        self.failures.append(failure)
        if self._showing and self.console is not None:
            from rich.text import Text

            self.console.print(Text(f"✗ {failure.task_name} failed: {failure.exception_type}",
                                    style="red"))

    def run_finished(self, result: Any) -> None:
        self.close()

    # -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the live line (safe to call twice, and after an exception)."""
        if self._live is not None and self._showing:
            self._showing = False
            self._live.stop()

    def _render(self) -> Text:
        from rich.spinner import Spinner
        from rich.text import Text

        if self._spinner is None:
            self._spinner = Spinner("dots", style="cyan")
        elapsed = time.monotonic() - self._started
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append_text(self._spinner.render(time.monotonic()))  # type: ignore[arg-type]
        line.append(f" run {short_id(self.run_id)} ", style="bold")
        line.append(f"{elapsed:.1f} s ", style="bright_black")
        for state in STATES:
            count = self._counts.get(state, 0)
            if count or state in ("done", "cached", "running"):
                line.append(f" {state} ", style=STATUS_STYLES.get(state, ""))
                line.append(str(count), style="bold")
        if self.entry:
            line.append(f"  {self.entry}", style="bright_black")
        return line
