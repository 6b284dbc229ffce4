"""What a task prints or logs, kept with its task run.

While a worker runs tasks, ``sys.stdout`` and ``sys.stderr`` are proxies and the root logger
has one more handler; both route by the running task (a context variable, so concurrent
tasks of the ``threads`` executor never mix their lines) into that task's
:class:`TaskOutput`, and pass everything else through untouched. Printed lines are also
echoed to the stream they were written to (``logs.echo``). A task run keeps at most
``logs.max_bytes`` of log text; what is over the limit is dropped and a closing line says
how much.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

#: (created_at epoch, level name, logger name, message)
LogEntry = tuple[float, str, str | None, str]
#: The level recorded for printed lines, by stream.
STREAM_LEVELS = {"stdout": "STDOUT", "stderr": "STDERR"}
#: Set on records already kept by ``context.logger``, so the handler does not keep them twice.
RECORDED = "ledgerflow_recorded"


class TaskOutput:
    """The log of one task run: ``context.logger`` records, printed lines, logging records."""

    __slots__ = ("_pending", "_pending_size", "dropped_bytes", "dropped_lines", "echo",
                 "entries", "max_bytes", "used")  # fmt: skip

    def __init__(self, entries: list[LogEntry], max_bytes: int, echo: bool = True) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self.echo = echo
        self.used = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self._pending: dict[str, list[str]] = {}
        self._pending_size: dict[str, int] = {}

    def add(self, level: str, logger: str | None, message: str) -> None:
        """Keep one line of the log, or count it as dropped once the limit is reached."""
        size = len(message.encode("utf-8", "replace"))
        room = self.max_bytes - self.used
        if size > room:
            if room < 80:  # not worth a cut line
                self.dropped_lines += 1
                self.dropped_bytes += size
                self.used = self.max_bytes
                return
            message = message.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            self.dropped_bytes += size - room
            size = room
        self.used += size
        self.entries.append((time.time(), level, logger, message))

    def write(self, stream: str, text: str) -> None:
        """Printed text: complete lines are kept, a partial one waits for its end."""
        if self.used >= self.max_bytes:  # full: count what is dropped (line ends aside)
            ends = text.count("\n")
            self.dropped_lines += ends
            self.dropped_bytes += len(text.encode("utf-8", "replace")) - ends
            return
        pending = self._pending.setdefault(stream, [])
        if "\n" not in text and "\r" not in text:  # a piece of a line: no copying
            pending.append(text)
            self._pending_size[stream] = size = self._pending_size.get(stream, 0) + len(text)
            if size > self.max_bytes:  # a huge line with no end
                self.add(STREAM_LEVELS[stream], None, "".join(pending))
                pending.clear()
                self._pending_size[stream] = 0
            return
        *lines, rest = ("".join(pending) + text).split("\n")
        for line in lines:
            self.add(STREAM_LEVELS[stream], None, _last_redraw(line))
        rest = _last_redraw(rest, keep_end=True)
        pending[:] = [rest] if rest else []
        self._pending_size[stream] = len(rest)

    def finish(self) -> None:
        """Keep unfinished lines, and say what the limit dropped."""
        pending, self._pending, self._pending_size = self._pending, {}, {}
        for stream, pieces in pending.items():
            if pieces:
                self.add(STREAM_LEVELS[stream], None, _last_redraw("".join(pieces)))
        if self.dropped_lines or self.dropped_bytes:
            self.entries.append((
                time.time(), "WARNING", "ledgerflow",
                f"output over this task run's limit of {self.max_bytes:,} bytes was dropped: "
                f"{self.dropped_lines:,} line(s), {self.dropped_bytes:,} bytes "
                "(logs.max_bytes in ledgerflow.yml sets the limit)",
            ))  # fmt: skip
            self.dropped_lines = self.dropped_bytes = 0


def _last_redraw(line: str, keep_end: bool = False) -> str:
    """What a line shows on a terminal: the part after its last carriage return (a redrawn
    progress bar keeps its last state); ``keep_end`` keeps trailing carriage returns."""
    body = line.rstrip("\r")
    if "\r" in body:
        body = body.rsplit("\r", 1)[1]
    return body + line[len(line.rstrip("\r")) :] if keep_end else body


def _nowhere() -> TaskOutput | None:
    return None


#: The running task's log, or None outside tasks: set by :func:`start_capture`.
_current_output: Callable[[], TaskOutput | None] = _nowhere


class TaskStream:
    """``sys.stdout`` or ``sys.stderr`` while tasks run: a running task's text goes to its
    log (and, with echo, on to the real stream); any other text goes straight through."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self.stream = stream

    def write(self, text: str) -> int:
        output = _current_output()
        if output is None or sys._getframe(1).f_code is _STREAM_HANDLER_EMIT:
            return self.stream.write(text)  # a logging handler's line: its record is kept
        output.write(self.name, str(text))
        if output.echo:
            self.stream.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer, ...
        return getattr(self.stream, name)


class TaskLogHandler(logging.Handler):
    """Keeps the records of standard ``logging`` emitted by a running task in its log."""

    def emit(self, record: logging.LogRecord) -> None:
        output = _current_output()
        if output is not None and not getattr(record, RECORDED, False):
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: keep what was given
                message = f"{record.msg} {record.args}"
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            elif record.exc_text:
                message = f"{message}\n{record.exc_text}"
            output.add(record.levelname, record.name, message)
        last = logging.lastResort
        if last is not None and record.levelno >= last.level and _only_handler(record):
            stream = sys.stderr  # what logging does when nobody listens, but not kept twice
            stream = stream.stream if isinstance(stream, TaskStream) else stream
            if stream is not None:
                stream.write(last.format(record) + "\n")


def _only_handler(record: logging.LogRecord) -> bool:
    """Whether no handler but this one sees ``record`` (then logging's last resort would)."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not _HANDLER for h in logger.handlers):
            return False
        logger = logger.parent if logger.propagate else None
    return True


_STREAM_HANDLER_EMIT = logging.StreamHandler.emit.__code__


_HANDLER = TaskLogHandler()
_lock = threading.Lock()
_users = 0


def start_capture(current_output: Callable[[], TaskOutput | None]) -> None:
    """Route what tasks print and log to the log ``current_output()`` returns for the running
    task (nested and concurrent callers share one setup)."""
    global _users, _current_output
    with _lock:
        _users += 1
        if _users > 1:
            return
        _current_output = current_output
        if sys.stdout is not None and not isinstance(sys.stdout, TaskStream):
            sys.stdout = TaskStream("stdout", sys.stdout)  # type: ignore[assignment]
        if sys.stderr is not None and not isinstance(sys.stderr, TaskStream):
            sys.stderr = TaskStream("stderr", sys.stderr)  # type: ignore[assignment]
        logging.getLogger().addHandler(_HANDLER)


def stop_capture() -> None:
    """Undo :func:`start_capture` when its last caller is done."""
    global _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users:
            return
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, TaskStream):
                setattr(sys, name, stream.stream)
        logging.getLogger().removeHandler(_HANDLER)
