"""``ledgerflow cache verify``: every entry and value checked, one line per problem."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, update

import ledgerflow
from ledgerflow import api, task
from ledgerflow.cli.main import cli
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.hashing import hash_value
from ledgerflow.ledger import tables
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.values import Trust, digest, encode


class Blob:
    def __init__(self, n: int) -> None:
        self.n = n


@task
def plain(n: int) -> tuple[int, str]:
    return (n, "x" * n)


@task
def pickled(n: int) -> Blob:
    return Blob(n)


def tamper(settings: Settings, statement: Any) -> None:
    database = Database(settings, role="admin")
    try:
        with database.engine().begin() as conn:
            assert conn.execute(statement).rowcount == 1
    finally:
        database.dispose()


def verify_cli(settings: Settings, *args: str) -> tuple[int, str]:
    assert settings.path is not None
    result = CliRunner().invoke(
        cli, ["--config", str(settings.path), "cache", "verify", *args], catch_exceptions=False
    )
    return result.exit_code, result.output


def test_a_clean_ledger_verifies(ledger_settings: Settings) -> None:
    path = ledger_settings.path
    assert path is not None  # large values in the default store (the ledger on PostgreSQL)
    path.write_text(path.read_text() + "values: {inline_max_bytes: 200}\n")
    settings = load_settings(path)
    ledgerflow.run([plain(1), plain(2), pickled(3), plain(900)], settings=settings)
    report = api.cache_verify(settings)
    assert report.ok, [p.line() for p in report.problems]
    assert report.entries == 4 and report.values >= 8
    code, out = verify_cli(settings)
    assert code == 0 and "Checked 4 cache entries" in out and "no problem" in out


def test_every_kind_of_problem_is_one_line(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    path = ledger_settings.path
    assert path is not None
    path.write_text(path.read_text() + "values: {inline_max_bytes: 200, store: blobs}\n")
    settings = load_settings(path)
    ledgerflow.run([plain(1), plain(2), plain(500), pickled(3)], settings=settings)
    one, two = hash_value((1, "x")), hash_value((2, "xx"))
    (entry_one,) = ledger.rows("lf_cache_entry", value_hash=one)
    # 1. an entry pointed at another value
    tamper(settings, update(tables.cache_entry)
           .where(tables.cache_entry.c.args_hash == entry_one["args_hash"])
           .values(value_hash=two))  # fmt: skip
    # 2. plain bytes changed (with a digest to match)
    forged = encode((2, "yy")).data
    tamper(settings, update(tables.value).where(tables.value.c.hash == two)
           .values(inline=forged, signature=digest(forged)))  # fmt: skip
    # 3. a pickle whose bytes changed
    (blob,) = ledger.rows("lf_value", hash=hash_value(Blob(3)))
    assert blob["format"] == "pickle"
    tamper(settings, update(tables.value).where(tables.value.c.hash == blob["hash"])
           .values(inline=pickle.dumps(Blob(4))))  # fmt: skip
    # 4. a value missing from its store
    big = hash_value((500, "x" * 500))
    (row,) = ledger.rows("lf_value", hash=big)
    assert row["store_key"] and row["inline"] is None
    from ledgerflow.engine.valuing import Values

    Values(settings).store.delete(row["store_key"])
    # 5. a pickle by a writer nobody trusts (on PostgreSQL the server names the admin role)
    data = pickle.dumps(Blob(9))
    database = Database(settings, role="admin")
    try:
        with database.engine().begin() as conn:
            conn.execute(insert(tables.value).values(
                hash="e" * 40, type_name="Blob", format="pickle", inline=data, size=len(data),
                signature=digest(data), writer="mallory", created_at=_now(),
            ))  # fmt: skip
    finally:
        database.dispose()
    if settings.default.dialect == "postgresql":
        settings = _trusting(settings, [settings.writer])

    report = api.cache_verify(settings)
    lines = [p.line() for p in report.problems]
    assert len(lines) == 5, lines
    text = "\n".join(lines)
    assert f"cache entry {entry_one['task_hash']}/{entry_one['args_hash']} (plain)" in text
    assert "does not match the call it claims" in text
    assert f"value {two}: its stored bytes do not hash to its content address" in text
    assert f"value {blob['hash']}: its stored bytes changed since they were written" in text
    assert f"value {big}: not reachable in its value store" in text
    assert "e" * 40 in text and "who is not in cache.trust" in text
    code, out = verify_cli(settings)
    assert code == 6 and "5 problem(s)" in out
    assert all(line in out for line in lines)
    code, out = verify_cli(settings, "--json")
    data = json.loads(out)
    assert code == 6 and data["ok"] is False and len(data["problems"]) == 5
    assert {p["kind"] for p in data["problems"]} == {"entry", "value"}
    # nothing was changed, and a run still gets the right answers (recomputing the bad ones)
    result = ledgerflow.execute([plain(1), plain(2), plain(500), pickled(3)], settings=settings)
    assert result.value[:3] == [(1, "x"), (2, "xx"), (500, "x" * 500)]
    assert result.value[3].n == 3 and len(result.notes) == 4


def _trusting(settings: Settings, names: list[str]) -> Settings:
    path = settings.path
    assert path is not None
    path.write_text(path.read_text() + f"cache: {{trust: {json.dumps(names)}}}\n")
    return load_settings(path)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_trust_comes_from_the_settings(ledger_settings: Settings, tmp_path: Path) -> None:
    trust = Trust.of(ledger_settings)
    assert ledger_settings.writer in trust.writers
    if ledger_settings.default.dialect == "postgresql":
        assert ledger_settings.default.admin is not None
        assert trust.writers == {ledger_settings.writer, ledger_settings.default.admin.username}
    assert Trust.of(_trusting(ledger_settings, ["alice", "bob"])).writers == {"alice", "bob"}


@pytest.mark.parametrize("bad", ["alice", "[1]", "['']"])
def test_cache_trust_must_be_a_list_of_names(ledger_settings: Settings, bad: str) -> None:
    from ledgerflow.errors import ConfigError

    path = ledger_settings.path
    assert path is not None
    path.write_text(path.read_text() + f"cache: {{trust: {bad}}}\n")
    with pytest.raises(ConfigError, match="trust"):
        load_settings(path)


def test_a_runs_notes_are_printed_one_line_each_and_listed_in_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ledgerflow.cli.run import NOTES_SHOWN, _report
    from ledgerflow.engine.results import RunResult

    notes = [f"t.f(n={i}): cached result not used, x; computing it again" for i in range(25)]
    result = RunResult(run_id="ab" * 16, status="done", value=1, notes=notes)
    _report(result, quiet=False, as_json=False, dry_run=False)
    err = capsys.readouterr().err.splitlines()
    assert err[:NOTES_SHOWN] == [f"note: {line}" for line in notes[:NOTES_SHOWN]]
    assert err[NOTES_SHOWN] == "note: … and 5 more (run --json lists them)"
    _report(result, quiet=False, as_json=True, dry_run=False)
    captured = capsys.readouterr()
    assert json.loads(captured.out)["notes"] == notes and captured.err == ""
