"""A run reports its progress to an observer (the CLI's progress display is one)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import ledgerflow
from ledgerflow import task
from ledgerflow.config.settings import Settings
from ledgerflow.engine import Failure, RunObserver, RunResult


@task
def nap(i: int) -> int:
    time.sleep(0.002)
    return i


@task
def broken(i: int) -> int:
    raise ValueError("nope")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def run_started(self, run_id: str, entry: str) -> None:
        self.events.append(("started", (run_id, entry)))

    def counts_changed(self, counts: dict[str, int], elapsed: float) -> None:
        self.events.append(("counts", (dict(counts), elapsed)))

    def task_failed(self, failure: Failure) -> None:
        self.events.append(("failed", failure))

    def run_finished(self, result: RunResult) -> None:
        self.events.append(("finished", result))


class Broken(Recorder):
    def counts_changed(self, counts: dict[str, int], elapsed: float) -> None:
        raise RuntimeError("a display bug")


def test_the_observer_sees_start_progress_failures_and_the_end(ledger_settings: Settings) -> None:
    observer = Recorder()
    assert isinstance(observer, RunObserver)
    result = ledgerflow.execute(
        [nap(i) for i in range(150)] + [broken(1)], settings=ledger_settings, observer=observer
    )
    kinds = [kind for kind, _ in observer.events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert observer.events[0][1] == (result.run_id, "list of 151 calls")
    (failure,) = [data for kind, data in observer.events if kind == "failed"]
    assert failure.task_name == broken.fullname and failure.message == "nope"
    progress = [data for kind, data in observer.events if kind == "counts"]
    assert progress[-1][0] == result.counts and result.counts["done"] == 150
    assert all(counts["running"] <= 1 for counts, _ in progress)  # local: one at a time
    assert any(counts["pending"] > 0 for counts, _ in progress[:-1])
    times = [elapsed for _, elapsed in progress[:-1]]
    assert all(b - a >= 0.099 for a, b in itertools.pairwise(times))  # at most 10 reports a second
    assert observer.events[-1][1] is result


def test_a_failing_observer_does_not_fail_the_run(ledger_settings: Settings) -> None:
    observer = Broken()
    assert ledgerflow.run([nap(1), nap(2)], settings=ledger_settings, observer=observer) == [1, 2]
    assert [kind for kind, _ in observer.events] == ["started", "finished"]  # counts skipped
