"""``ledgerflow cache verify --repair``: the admin removes what is damaged, the next run
computes exactly those calls once, and the run after it is all cache hits (SQLite and a
real PostgreSQL server, where the runs use the user role, which may only add rows)."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from ledgerflow import api, task
from ledgerflow.cli.main import cli, main
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.engine.runner import execute
from ledgerflow.engine.valuing import Values
from ledgerflow.errors import PrivilegeError
from ledgerflow.hashing import hash_value
from ledgerflow.ledger import tables
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.testing.projects import make_project
from ledgerflow.values import digest, encode

CALLS: Counter[tuple[str, int]] = Counter()


class Blob:
    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blob) and other.n == self.n

    def __hash__(self) -> int:
        return self.n


@task
def plain(n: int) -> tuple[int, str]:
    CALLS["plain", n] += 1
    return (n, "x" * n)


@task
def pickled(n: int) -> Blob:
    CALLS["pickled", n] += 1
    return Blob(n)


def calls() -> list[Any]:
    return [plain(1), plain(2), plain(3), plain(500), pickled(7)]


def admin_do(settings: Settings, statement: Any) -> Any:
    database = Database(settings, role="admin")
    try:
        with database.engine().begin() as conn:
            return conn.execute(statement)
    finally:
        database.dispose()


def scalar(settings: Settings, query: Any) -> Any:
    database = Database(settings, role="admin")
    try:
        with database.engine().connect() as conn:
            return conn.execute(query).scalar_one()
    finally:
        database.dispose()


def small_inline(settings: Settings) -> Settings:
    path = settings.path
    assert path is not None  # large values in the default store (the ledger on PostgreSQL)
    path.write_text(path.read_text() + "values: {inline_max_bytes: 200}\n")
    return load_settings(path)


def damage(settings: Settings, ledger: LedgerRows) -> dict[str, Any]:
    """An entry pointed at another value; plain bytes forged; a pickle's bytes changed; a
    value-store object overwritten. Returns what was damaged."""
    one, two = hash_value((1, "x")), hash_value((2, "xx"))
    (entry_one,) = ledger.rows("lf_cache_entry", value_hash=one)
    c, v = tables.cache_entry, tables.value
    admin_do(settings, update(c).where(c.c.args_hash == entry_one["args_hash"]).values(value_hash=two))
    forged = encode((2, "yy")).data
    admin_do(settings, update(v).where(v.c.hash == two).values(inline=forged, signature=digest(forged)))
    blob = hash_value(Blob(7))
    admin_do(settings, update(v).where(v.c.hash == blob).values(inline=pickle.dumps(Blob(8))))
    big = hash_value((500, "x" * 500))
    (row,) = ledger.rows("lf_value", hash=big)
    assert row["store_key"] and row["inline"] is None
    database = Database(settings, role="admin")  # the user role may not delete chunks
    try:
        store = Values(settings, engine=database.engine()).store
        store.delete(row["store_key"])
        store.put(row["store_key"], encode((500, "y" * 500)).data)
    finally:
        database.dispose()
    return {"entry": f"{entry_one['task_hash']}/{entry_one['args_hash']}", "values": {two, blob, big}}


def counts(settings: Settings) -> tuple[int, int, int]:
    return (scalar(settings, select(func.count()).select_from(tables.run)),
            scalar(settings, select(func.count()).select_from(tables.task_run)),
            scalar(settings, select(func.count()).select_from(tables.call)))  # fmt: skip


def test_repair_then_one_recomputation_then_only_hits(ledger_settings: Settings, ledger: LedgerRows) -> None:
    settings = small_inline(ledger_settings)
    first = execute(calls(), settings=settings)
    assert first.ok and not first.notes
    damaged = damage(settings, ledger)

    planned = api.cache_repair(settings)  # a dry run: nothing changes
    assert planned.dry_run and planned.entries == (damaged["entry"],)
    assert set(planned.values) == damaged["values"] and not planned.left
    assert api.cache_verify(settings).problems == planned.verified.problems
    history = counts(settings)

    repaired = api.cache_repair(settings, dry_run=False)
    assert not repaired.dry_run and set(repaired.values) == damaged["values"]
    assert repaired.blobs >= 1  # the overwritten store object went
    assert counts(settings) == history  # runs, task runs and calls all stay
    assert ledger.count("lf_cache_entry") == 4  # only the inconsistent entry went

    CALLS.clear()
    second = execute(calls(), settings=settings)
    assert second.ok
    assert Counter({("plain", 1): 1, ("plain", 2): 1, ("plain", 500): 1, ("pickled", 7): 1}) == CALLS
    assert second.value == [(1, "x"), (2, "xx"), (3, "xxx"), (500, "x" * 500), Blob(7)]

    CALLS.clear()
    third = execute(calls(), settings=settings)
    assert third.ok and not third.notes, third.notes
    assert not CALLS, CALLS
    assert third.value == second.value
    assert api.cache_verify(settings).ok, [p.line() for p in api.cache_verify(settings).problems]


def test_the_recorder_stores_fresh_bytes_for_a_repaired_value(
    ledger_settings: Settings, ledger: LedgerRows
) -> None:
    """After the admin dropped a damaged value's bytes its row stays (calls and arguments
    refer to it); the run that computes it again writes the bytes under the row's key."""
    settings = small_inline(ledger_settings)
    execute([plain(2)], settings=settings)
    two = hash_value((2, "xx"))
    forged = encode((2, "yy")).data
    v = tables.value
    admin_do(settings, update(v).where(v.c.hash == two).values(inline=forged, signature=digest(forged)))
    api.cache_repair(settings, dry_run=False)
    (row,) = ledger.rows("lf_value", hash=two)
    assert row["inline"] is None and row["store_key"] == two
    store = Values(settings).store
    assert not store.exists(two)
    CALLS.clear()
    assert execute([plain(2)], settings=settings).value == [(2, "xx")]
    assert Counter({("plain", 2): 1}) == CALLS
    assert store.exists(two)
    assert store.get(two) == encode((2, "xx")).data


def test_verify_repair_on_the_command_line(ledger_settings: Settings, ledger: LedgerRows) -> None:
    settings = small_inline(ledger_settings)
    execute(calls(), settings=settings)
    damaged = damage(settings, ledger)
    runner = CliRunner()
    base = ["--config", str(settings.path), "cache", "verify"]
    dry = runner.invoke(cli, base, catch_exceptions=False)
    assert dry.exit_code == 6
    assert "--repair would remove 1 cache entry and the bytes of 3 value(s)." in dry.output
    assert ledger.count("lf_cache_entry") == 5
    unasked = runner.invoke(cli, [*base, "--repair"], input="")  # off a terminal, no --yes
    assert unasked.exit_code != 0
    assert "refusing to repair the cache without confirmation" in str(unasked.exception)
    assert "leave out --repair" in str(unasked.exception)
    assert ledger.count("lf_cache_entry") == 5
    done = runner.invoke(cli, [*base, "--repair", "--yes", "--json"], catch_exceptions=False)
    assert done.exit_code == 6, done.output  # it says what it found
    data = json.loads(done.output)
    assert data["ok"] is False and len(data["problems"]) == 4
    assert data["repair"]["dry_run"] is False and data["repair"]["entries"] == [damaged["entry"]]
    assert set(data["repair"]["values"]) == damaged["values"] and data["repair"]["left"] == []
    assert ledger.count("lf_cache_entry") == 4


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_drop_untrusted_only_when_asked(ledger_settings: Settings, ledger: LedgerRows) -> None:
    """On SQLite the next run's own writer replaces the untrusted one (on PostgreSQL the
    server keeps a row's writer: see docs/sharing.md)."""
    settings = ledger_settings
    execute([pickled(5), plain(4)], settings=settings)
    blob = hash_value(Blob(5))
    v = tables.value
    admin_do(settings, update(v).where(v.c.hash == blob).values(writer="mallory"))
    kept = api.cache_repair(settings, dry_run=False)
    assert kept.values == () and [p.fix for p in kept.left] == ["untrusted"]
    assert kept.untrusted_left == 1
    dry = CliRunner().invoke(cli, ["--config", str(settings.path), "cache", "verify"])
    assert dry.exit_code == 6 and "--repair would remove 0 cache entries and the bytes of 0 " \
        "value(s) (--drop-untrusted: also the untrusted pickles)." in dry.output, dry.output
    CALLS.clear()
    assert execute([pickled(5)], settings=settings).notes  # still untrusted
    dropped = api.cache_repair(settings, dry_run=False, drop_untrusted=True)
    assert dropped.values == (blob,)
    CALLS.clear()
    execute([pickled(5), plain(4)], settings=settings)
    assert Counter({("pickled", 5): 1}) == CALLS
    CALLS.clear()
    again = execute([pickled(5), plain(4)], settings=settings)
    assert not CALLS and not again.notes and again.value == [Blob(5), (4, "xxxx")]


@pytest.mark.postgres
@pytest.mark.parametrize("database_dialect", ["postgresql"])
def test_repair_as_the_user_role_is_one_line_and_changes_nothing(
    tmp_path: Path,
    migrated_database_entry: dict[str, Any],
    ledger: LedgerRows,
    capsys: pytest.CaptureFixture[str],
) -> None:
    full = small_inline(make_project(tmp_path / "full", migrated_database_entry))
    user_entry = {k: v for k, v in migrated_database_entry.items() if k != "admin"}
    user_only = small_inline(make_project(tmp_path / "user", user_entry))
    execute(calls(), settings=full)
    damaged = damage(full, ledger)
    before = (ledger.rows("lf_cache_entry"), ledger.rows("lf_value"), ledger.rows("lf_value_chunk"))

    with pytest.raises(PrivilegeError, match="cache verify --repair needs the admin role"):
        api.cache_repair(user_only, dry_run=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(user_only.path), "cache", "verify", "--repair", "--yes"])
    assert exit_.value.code == 4
    err = capsys.readouterr().err
    assert err.startswith("Error: cache verify --repair needs the admin role"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (ledger.rows("lf_cache_entry"), ledger.rows("lf_value"), ledger.rows("lf_value_chunk")) == before
    # the dry run needs no admin
    assert set(api.cache_repair(user_only).values) == damaged["values"]
