"""The live progress line and the lines printed at the end of a run (no database involved)."""

from __future__ import annotations

import io

from rich.console import Console

from ledgerflow.cli.progress import RunProgress, failure_block, format_counts, summary_line
from ledgerflow.engine.results import Failure, RunResult

TRACEBACK = """Traceback (most recent call last):
  File "/x/engine/worker.py", line 40, in call
    return task.func(*args)
  File "/x/flow.py", line 12, in outer
    return inner(x)
  File "/x/flow.py", line 20, in check
    raise ValueError(f"bad input {x}")
ValueError: bad input 2
"""


def terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=120, color_system=None), buffer


def test_summary_line_names_done_and_cached_always_and_other_states_when_nonzero() -> None:
    counts = {"pending": 0, "running": 0, "done": 100, "cached": 0, "failed": 0, "skipped": 0}
    assert summary_line("3fa2c1d9e0", "done", 1.234, counts) == (
        "run 3fa2c1d9 done in 1.23 s: 100 done, 0 cached"
    )
    assert format_counts({"done": 6, "failed": 1, "skipped": 2, "cached": 3}) == (
        "6 done, 3 cached, 1 failed, 2 skipped"
    )


def test_failure_block_shows_call_exception_and_last_traceback_lines() -> None:
    failure = Failure("flow.check", "x=2", "ValueError", "bad input 2", TRACEBACK)
    block = failure_block(failure).splitlines()
    assert block[0] == "✗ flow.check(x=2) failed"
    assert block[1] == "  ValueError: bad input 2"
    assert block[2] == "  traceback (last lines):"
    assert block[-1] == '        raise ValueError(f"bad input {x}")'
    assert not any("Traceback (most recent" in line for line in block)
    assert sum("ValueError: bad input 2" in line for line in block) == 1
    assert len(block) == 3 + 6


def test_failure_block_shows_a_multi_line_message_once_and_keeps_the_notes() -> None:
    message = "bad input 2\n\nsee the sample sheet"
    trace = TRACEBACK.replace("ValueError: bad input 2\n", f"flow.errors.ValueError: {message}\nchecked twice\n")
    block = failure_block(Failure("flow.check", "x=2", "ValueError", message, trace)).splitlines()
    assert block[:3] == ["✗ flow.check(x=2) failed", "  ValueError: bad input 2", "  see the sample sheet"]
    assert sum("bad input 2" in line for line in block) == 1
    assert sum("see the sample sheet" in line for line in block) == 1
    assert block[-2:] == ['        raise ValueError(f"bad input {x}")', "    checked twice"]


def test_failure_block_of_a_chained_exception_keeps_the_cause() -> None:
    trace = ('Traceback (most recent call last):\n  File "/x/flow.py", line 3, in f\n    {}["k"]\n'
             "KeyError: 'k'\n\nThe above exception was the direct cause of the following exception:\n\n"
             'Traceback (most recent call last):\n  File "/x/flow.py", line 5, in f\n'
             '    raise RuntimeError("wrapped") from exc\nRuntimeError: wrapped\n')
    block = failure_block(Failure("flow.f", "", "RuntimeError", "wrapped", trace)).splitlines()
    assert "    KeyError: 'k'" in block and sum("wrapped" in line for line in block) == 2  # the line, the raise
    assert block[-1] == '        raise RuntimeError("wrapped") from exc'


def test_failure_block_without_traceback() -> None:
    block = failure_block(Failure("t", "", "KeyError", "'k'", ""))
    assert block == "✗ t() failed\n  KeyError: 'k'"


def test_live_line_shows_run_counts_and_elapsed_time() -> None:
    console, buffer = terminal()
    progress = RunProgress(console, live=True, refresh_per_second=50)
    progress.run_started("ab12cd34ef", "flow.main")
    progress.counts_changed({"done": 3, "cached": 2, "running": 1, "pending": 4, "failed": 0}, 0.5)
    line = progress._render().plain
    assert "run ab12cd34" in line and "flow.main" in line
    assert "done 3" in line and "cached 2" in line and "running 1" in line and "pending 4" in line
    assert "failed" not in line  # zero failures are not shown while running
    progress.task_failed(Failure("flow.check", "x=2", "ValueError", "bad", ""))
    progress.run_finished(RunResult("ab12cd34ef", "failed"))
    progress.close()  # twice is fine
    assert "✗ flow.check failed: ValueError" in buffer.getvalue()
    assert len(progress.failures) == 1


def test_nothing_is_drawn_without_a_terminal() -> None:
    console, buffer = terminal()
    progress = RunProgress(console, live=False)
    progress.run_started("ab12cd34ef", "flow.main")
    progress.counts_changed({"done": 1}, 0.1)
    progress.task_failed(Failure("flow.check", "x=2", "ValueError", "bad", ""))
    progress.run_finished(RunResult("ab12cd34ef", "failed"))
    assert buffer.getvalue() == ""
    assert progress.run_id == "ab12cd34ef"
