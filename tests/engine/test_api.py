"""ledgerflow.api, engine part: running a target by name, and opening a ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledgerflow import api
from ledgerflow.config.settings import Settings
from ledgerflow.ledger.schema import Run
from ledgerflow.testing.pipelines import LedgerRows


def test_call_target_runs_a_task_named_by_file(ledger_settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "api_pipeline.py").write_text(
        "from ledgerflow import task\n\n@task\ndef square(x: int) -> int:\n    return x * x\n"
    )
    call = api.call_target(f"{tmp_path / 'api_pipeline.py'}:square", {"x": 7})
    assert api.run(call, settings=ledger_settings) == 49
    assert api.explain(call, settings=ledger_settings).status == "cached"


def test_opening_the_ledger_marks_dead_runs(ledger_settings: Settings, ledger: LedgerRows) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    database = api.open_ledger(ledger_settings)
    try:
        with database.transaction() as session:
            session.add(Run(id="d" * 32, status="running", entry_task="x", started_at=old,
                            heartbeat_at=old, host="another-host", pid=1))  # fmt: skip
    finally:
        database.dispose()
    assert api.mark_dead_runs(ledger_settings) == ["d" * 32]
    assert ledger.rows("lf_run")[0]["status"] == "interrupted"
    api.open_ledger(ledger_settings).dispose()
    assert api.mark_dead_runs(ledger_settings) == []
