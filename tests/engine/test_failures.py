"""Failures, skipped dependents, retries, unserialisable values and Ctrl-C."""

from __future__ import annotations

import threading

import pytest

import ledgerflow
from ledgerflow import task
from ledgerflow.config.settings import Settings
from ledgerflow.errors import RunFailedError, RunInterruptedError
from ledgerflow.testing.pipelines import LedgerRows

ATTEMPTS: list[int] = []


@task
def ok(x: int) -> int:
    return x


@task
def boom(x: int) -> int:
    raise ValueError(f"bad input {x}")


@task
def double(x: int) -> int:
    return 2 * x


@task
def pipeline() -> list[int]:
    return [double(ok(1)), double(boom(2)), double(ok(3))]


@task(retries=2)
def flaky(x: int) -> int:
    ATTEMPTS.append(x)
    if len(ATTEMPTS) < 3:
        raise ConnectionError(f"attempt {len(ATTEMPTS)} lost the connection")
    return x


@task(retries=1)
def always_fails() -> int:
    raise RuntimeError("still broken")


@task
def returns_a_lock() -> object:
    return threading.Lock()


@task
def interrupted_here(x: int) -> int:
    raise KeyboardInterrupt


def _by_name(ledger: LedgerRows, run_id: str) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in ledger.rows("lf_task_run", run_id=run_id):
        rows.setdefault(row["task_name"].rsplit(".", 1)[1], []).append(row)
    return rows


def test_a_failure_skips_its_dependents_and_other_branches_finish(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    result = ledgerflow.execute(pipeline(), settings=ledger_settings)
    assert result.status == "failed" and result.value is None
    counts = {k: v for k, v in result.counts.items() if v}
    # done: ok x2, double x2; failed: boom; skipped: its double, and pipeline
    assert counts == {"done": 4, "failed": 1, "skipped": 2}
    (failure,) = result.failures
    assert failure.task_name == boom.fullname and failure.arguments_preview == "x=2"
    assert failure.exception_type == "ValueError" and failure.message == "bad input 2"
    assert 'raise ValueError(f"bad input {x}")' in failure.traceback

    rows = _by_name(ledger, result.run_id)
    (failed,) = rows["boom"]
    assert failed["status"] == "failed" and failed["exception_type"] == "ValueError"
    assert failed["exception_message"] == "bad input 2" and "Traceback" in failed["traceback"]
    doubles = sorted(r["status"] for r in rows["double"])
    assert doubles == ["done", "done", "skipped"]
    skipped = next(r for r in rows["double"] if r["status"] == "skipped")
    assert "boom(x=2)" in skipped["exception_message"] and skipped["args_hash"] == ""
    assert rows["pipeline"][0]["status"] == "skipped"
    assert [r["status"] for r in ledger.rows("lf_run")] == ["failed"]
    # the finished branches are cached for the next run
    again = ledgerflow.execute(pipeline(), settings=ledger_settings)
    assert again.status == "failed" and again.counts["cached"] == 4  # ok x2, double x2


def test_run_raises_with_every_failure_in_its_message(ledger_settings: Settings) -> None:
    with pytest.raises(RunFailedError) as info:
        ledgerflow.run([boom(1), boom(2), ok(3)], settings=ledger_settings)
    message = str(info.value)
    assert "2 tasks failed" in message
    assert f"{boom.fullname}(x=1)\n  ValueError: bad input 1" in message
    assert f"{boom.fullname}(x=2)\n  ValueError: bad input 2" in message
    assert info.value.exit_code == 1
    assert info.value.result.status == "failed"  # type: ignore[attr-defined]


def test_retries_are_recorded_as_attempts(ledger_settings: Settings, ledger: LedgerRows) -> None:
    ATTEMPTS.clear()
    assert ledgerflow.run(flaky(5), settings=ledger_settings) == 5
    rows = sorted(ledger.rows("lf_task_run"), key=lambda r: r["attempt"])
    attempts = [(r["attempt"], r["status"]) for r in rows]
    assert attempts == [(1, "failed"), (2, "failed"), (3, "done")]
    assert rows[0]["exception_message"] == "attempt 1 lost the connection"
    assert rows[0]["exception_type"] == "ConnectionError"
    assert len({r["id"] for r in rows}) == 3 and rows[2]["value_hash"] is not None

    result = ledgerflow.execute(always_fails(), settings=ledger_settings)
    assert result.status == "failed" and len(result.failures) == 1
    attempts = [r["attempt"] for r in ledger.rows("lf_task_run", run_id=result.run_id)]
    assert sorted(attempts) == [1, 2]


def test_an_unserialisable_value_fails_its_task_naming_the_type(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    result = ledgerflow.execute(returns_a_lock(), settings=ledger_settings)
    (failure,) = result.failures
    assert failure.exception_type == "ledgerflow.errors.SerializationError"
    assert returns_a_lock.fullname in failure.message and "_thread.lock" in failure.message
    (row,) = ledger.rows("lf_task_run")
    assert row["status"] == "failed" and "_thread.lock" in row["exception_message"]


def test_ctrl_c_interrupts_the_run_and_keeps_finished_work(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    with pytest.raises(RunInterruptedError) as info:
        ledgerflow.run([ok(1), double(interrupted_here(ok(2))), ok(3)], settings=ledger_settings)
    assert info.value.exit_code == 130
    (run,) = ledger.rows("lf_run")
    assert run["status"] == "interrupted" and run["ended_at"] is not None
    statuses = {(r["task_name"].rsplit(".", 1)[1], r["status"]) for r in ledger.rows("lf_task_run")}
    assert ("interrupted_here", "interrupted") in statuses
    assert ("double", "interrupted") in statuses
    assert ("ok", "done") in statuses
    # what finished is cached
    again = ledgerflow.execute([ok(1), ok(2)], settings=ledger_settings)
    assert again.counts["cached"] == 2
