"""``context`` inside and outside tasks; values inline, in the store, and their signatures."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update

import ledgerflow
from ledgerflow import context, task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database, Helpers
from ledgerflow.errors import ContextError
from ledgerflow.ledger.schema import Value
from ledgerflow.testing.pipelines import LedgerRows

NOTES = Table(
    "engine_note",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("text", String(50), nullable=False),
)
RUNS: list[str] = []
UNPICKLED: list[str] = []


class Tracked:
    """Records every time it is unpickled."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __setstate__(self, state: dict) -> None:
        UNPICKLED.append(state["label"])
        self.__dict__.update(state)


@task
def write_note(text: str, fail: bool = False) -> str:
    context.session.execute(insert(NOTES).values(text=text))
    assert isinstance(context.db, Helpers) and context.db.session is context.session
    context.logger.warning("wrote %s", text)
    if fail:
        raise RuntimeError("failed after writing")
    return context.run_id


@task
def describe(n: int) -> dict:
    return {
        "run_id": context.run_id,
        "args": context.args,
        "config": context.config.path,
        "task_run_id": context.task_run_id,
    }


@task
def entry(n: int) -> dict:
    return describe(n)


@task
def big(n: int) -> str:
    RUNS.append("big")
    return "x" * n


@task
def tracked(label: str) -> Tracked:
    RUNS.append("tracked")
    return Tracked(label)


@pytest.mark.parametrize("name", ["session", "db", "config", "run_id", "args", "logger"])
def test_context_outside_a_run_says_so(name: str) -> None:
    with pytest.raises(ContextError) as info:
        getattr(context, name)
    assert f"ledgerflow.context.{name} is only available inside a task" in str(info.value)
    assert "ledgerflow.run" in str(info.value)
    assert context.active is False


def test_the_session_commits_on_success_and_rolls_back_on_failure(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    admin = Database(ledger_settings, role="admin")
    try:
        NOTES.create(admin.engine())
    finally:
        admin.dispose()
    result = ledgerflow.execute(
        [write_note("kept"), write_note("dropped", fail=True)], settings=ledger_settings
    )
    assert result.status == "failed"
    database = Database(ledger_settings)
    try:
        with database.engine().connect() as conn:
            assert [r.text for r in conn.execute(select(NOTES))] == ["kept"]
    finally:
        database.dispose()
    run_id = result.run_id
    messages = [r["message"] for r in ledger.rows("lf_log_record", run_id=run_id)]
    assert sorted(messages) == ["wrote dropped", "wrote kept"]  # a failed task's logs are kept


def test_context_gives_the_run_the_entry_arguments_and_the_config(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    result = ledgerflow.execute(entry(4), settings=ledger_settings)
    seen = result.value
    assert seen["run_id"] == result.run_id and seen["args"] == {"n": 4}
    assert seen["config"] == ledger_settings.path
    row = ledger.rows("lf_task_run", id=seen["task_run_id"])[0]
    assert row["task_name"] == describe.fullname


def test_large_values_go_to_the_value_store(ledger_settings: Settings, ledger: LedgerRows) -> None:
    path = ledger_settings.path
    assert path is not None
    path.write_text(path.read_text() + "values: {inline_max_bytes: 100, store: blobs}\n")
    settings = load_settings(path)
    RUNS.clear()
    assert ledgerflow.run([big(10), big(1000)], settings=settings) == ["x" * 10, "x" * 1000]
    small = ledger.rows("lf_value", preview="'xxxxxxxxxx'")[0]
    assert small["inline"] is not None and small["store_key"] is None
    (large,) = ledger.rows("lf_value", type_name="builtins.str", size=1002)  # JSON quotes
    assert large["inline"] is None and large["store_key"] == large["hash"]
    stored = Path(settings.root, "blobs", large["hash"][:2], large["hash"][2:])
    assert stored.read_bytes().count(b"x") == 1000
    assert ledgerflow.run(big(1000), settings=settings) == "x" * 1000  # read back from the store
    assert RUNS == ["big", "big"]


def test_a_pickle_whose_bytes_changed_is_never_unpickled(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    RUNS.clear()
    UNPICKLED.clear()
    ledgerflow.run(tracked("a"), settings=ledger_settings)
    assert ledgerflow.run(tracked("a"), settings=ledger_settings).label == "a"
    assert UNPICKLED == ["a"] and RUNS == ["tracked"]  # the cached value was loaded once

    database = Database(ledger_settings, role="admin")  # the user role may not rewrite values
    try:
        with database.transaction() as session:
            session.execute(
                update(Value)
                .where(Value.type_name.like("%Tracked"))
                .values(inline=pickle.dumps(Tracked("forged")))
            )
    finally:
        database.dispose()
    UNPICKLED.clear()
    explanation = ledgerflow.explain(tracked("a"), settings=ledger_settings)
    assert explanation.status == "run"
    assert explanation.reasons == ["its stored bytes changed since they were written"]
    result = ledgerflow.execute(tracked("a"), settings=ledger_settings)
    assert result.value.label == "a" and result.counts["done"] == 1
    assert len(result.notes) == 1 and "stored bytes changed" in result.notes[0]
    assert UNPICKLED == [] and RUNS == ["tracked", "tracked"]  # recomputed, never unpickled
    (row,) = [r for r in ledger.rows("lf_value") if r["type_name"].endswith("Tracked")]
    if ledger_settings.databases["default"].dialect == "postgresql":
        # the user role only adds values: the damaged row stays until the admin repairs it,
        # and every run recomputes rather than load it
        assert b"forged" in row["inline"]
        ledgerflow.run(tracked("a"), settings=ledger_settings)
        assert RUNS == ["tracked"] * 3 and UNPICKLED == []
        return
    # this role may rewrite it: it was repaired, its fresh bytes in the value store
    assert row["inline"] is None and row["store_key"] == row["hash"]
    ledgerflow.run(tracked("a"), settings=ledger_settings)
    assert RUNS == ["tracked", "tracked"] and UNPICKLED == ["a"]
