"""`ledgerflow export/import/push/pull/prune/cache` from the command line, on both dialects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.testing.workload import LedgerWriter

from .conftest import Cli, Project


def scalar(settings: Settings, sql: str, bind: str = "default") -> object:
    database = Database(settings)
    try:
        with database.engine(bind).connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        database.dispose()


def test_export_then_import_twice(cli: Cli, project: Project, empty: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    done = cli(project.config, "export", "-o", str(path))
    assert done.code == 0, done.err
    count = len(path.read_text().splitlines())
    assert f"Exported {count} record(s) to {path}" in done.out

    first = cli(empty.path, "import", str(path))
    assert first.code == 0, first.err
    assert f"Imported {count} record(s) into the ledger; 0 already there." in first.out
    assert "task_run" in first.out and "added" in first.out
    again = cli(empty.path, "import", str(path), "--json")
    report = json.loads(again.out)
    assert report["total_added"] == 0 and report["total_skipped"] == count
    assert scalar(empty, "SELECT count(*) FROM lf_run") == project.workload.runs


def test_export_to_stdout_selected_runs(cli: Cli, project: Project) -> None:
    chain = project.workload.chain_run
    done = cli(project.config, "export", chain[:10])
    assert done.code == 0, done.err
    records = [json.loads(line) for line in done.out.splitlines()]
    runs = [r["key"] for r in records if r["kind"] == "run"]
    assert runs == [chain]
    assert "Exported" in done.err  # the summary goes to stderr when stdout holds the records
    recent = cli(project.config, "export", "--since", "2d")
    assert {json.loads(line)["kind"] for line in recent.out.splitlines()} >= {"run", "task_run"}


def test_corrupt_import_is_one_line_with_the_line_number(
    cli: Cli, project: Project, empty: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.jsonl"
    cli(project.config, "export", "-o", str(path))
    lines = path.read_text().splitlines()
    lines[5] = '{"kind": "run", "key": "x"'
    path.write_text("\n".join(lines) + "\n")
    done = cli(empty.path, "import", str(path))
    assert done.code == 6
    assert done.err.startswith("Error: ") and "line 6: not valid JSON" in done.err
    assert "Traceback" not in done.err and len(done.err.strip().splitlines()) == 1
    assert scalar(empty, "SELECT count(*) FROM lf_task_def") == 0


def test_prov_export_of_a_file(cli: Cli, project: Project, tmp_path: Path) -> None:
    out = tmp_path / "prov.json"
    done = cli(project.config, "export", "--prov", "out/run0/s0.vcf", "-o", str(out))
    assert done.code == 0, done.err
    document = json.loads(out.read_text())
    assert document["prefix"]["lf"] == "urn:ledgerflow:"
    assert {a["prov:label"] for a in document["activity"].values()} == {"align", "call_variants"}
    assert "activities" in done.out
    mixed = cli(project.config, "export", "--prov", "out/run0/s0.vcf", "--since", "2d")
    assert mixed.code == 2 and "--prov" in mixed.err
    missing = cli(project.config, "export", "--prov", "nowhere/at/all.txt")
    assert missing.code == 2 and "no value or file matches" in missing.err


def test_push_then_pull(cli: Cli, project: Project, tmp_path: Path) -> None:
    pushed = cli(project.config, "push", "spare")
    assert pushed.code == 0, pushed.err
    total = scalar(project.settings, "SELECT count(*) FROM lf_task_run")
    assert scalar(project.settings, "SELECT count(*) FROM lf_task_run", bind="spare") == total
    assert "into database 'spare'; 0 already there." in pushed.out

    spare = Settings(path=None, databases={"default": project.settings.databases["spare"]})
    w = LedgerWriter(now=datetime.now(UTC), seed=9)
    task = w.task("elsewhere")
    call = w.call(task, [w.value("from elsewhere")], w.value("made elsewhere"))
    w.task_run(w.run("elsewhere", root_call=call), task, call, task_name="elsewhere")
    w.write(spare)
    pulled = cli(project.config, "pull", "spare", "--json")
    report = json.loads(pulled.out)
    assert report["added"]["run"] == 1 and report["added"]["task_run"] == 1
    unknown = cli(project.config, "push", "nowhere")
    assert unknown.code == 2 and "no database named 'nowhere'" in unknown.err


def test_prune_dry_run_then_for_real(cli: Cli, project: Project) -> None:
    old = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m-%d %H:%M:%S")
    database = Database(project.settings)
    with database.engine().begin() as conn:
        chain = project.workload.chain_run
        conn.execute(text(f"UPDATE lf_run SET started_at = '{old}' WHERE id = '{chain}'"))
    database.dispose()
    dry = cli(project.config, "prune", "--older-than", "30d", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    report = json.loads(dry.out)
    assert report["dry_run"] is True and report["runs"] == [project.workload.chain_run]
    assert report["removed"]["run"] == 1 and report["removed"]["task_run"] == 5
    assert scalar(project.settings, "SELECT count(*) FROM lf_run") == project.workload.runs
    # destructive: refused off a terminal without --yes, asks on a terminal (and "n" keeps all)
    refused = cli(project.config, "prune", "--older-than", "30d")
    assert refused.code == 2 and "refusing to prune the ledger without confirmation" in refused.err
    assert "--yes" in refused.err and "Traceback" not in refused.err
    declined = cli(project.config, "prune", "--older-than", "30d", answer="n\n")
    assert declined.code == 130 and "1 run(s) started before" in declined.out
    assert scalar(project.settings, "SELECT count(*) FROM lf_run") == project.workload.runs
    real = cli(project.config, "prune", "--older-than", "30d", "--yes")
    assert real.code == 0, real.err
    assert "Removed 1 run(s)" in real.out and "task_run" in real.out
    assert scalar(project.settings, "SELECT count(*) FROM lf_run") == project.workload.runs - 1
    bad = cli(project.config, "prune", "--older-than", "soon")
    assert bad.code == 2 and bad.err.startswith("Error: --older-than")
    status = cli(project.config, "prune", "--older-than", "30d", "--status", "weird")
    assert status.code == 2 and "unknown run status 'weird'" in status.err


def test_cache_list_and_clear(cli: Cli, project: Project) -> None:
    database = Database(project.settings)
    with database.engine().begin() as conn:
        conn.execute(text(
            "INSERT INTO lf_cache_entry (task_hash, args_hash, call_hash, value_hash, run_id, created_at) "
            "SELECT c.task_hash, c.args_hash, c.hash, c.value_hash, NULL, c.created_at FROM lf_call c "
            "JOIN lf_task_def d ON d.hash = c.task_hash WHERE d.name = 'align'"))
    database.dispose()
    entries = scalar(project.settings, "SELECT count(*) FROM lf_cache_entry")
    listed = cli(project.config, "cache", "list", "--json")
    assert listed.code == 0, listed.err
    tasks = {t["task"]: t for t in json.loads(listed.out)["tasks"]}
    assert tasks["align"]["entries"] == entries and tasks["align"]["misses"] > 0
    # timestamps carry their UTC offset, like every --json
    assert tasks["align"]["latest_entry"].endswith("+00:00")
    latest = json.loads(cli(project.config, "cache", "list", "--task", "align", "--json").out)
    assert latest["entries"] and all(e["created_at"].endswith("+00:00") for e in latest["entries"])
    assert tasks["summarize"]["hits"] > 0 and tasks["summarize"]["entries"] == 0
    table = cli(project.config, "cache", "list", "--task", "align")
    assert "hit rate" in table.out and "latest entries of align" in table.out

    refused = cli(project.config, "cache", "clear", "--task", "align")
    assert refused.code == 2 and "--yes" in refused.err
    declined = cli(project.config, "cache", "clear", answer="n\n")
    assert declined.code == 130 and f"{entries} cache entries" in declined.out
    assert scalar(project.settings, "SELECT count(*) FROM lf_cache_entry") == entries
    dry = cli(project.config, "cache", "clear", "--task", "align", "--dry-run", "--json")
    assert json.loads(dry.out) == {"task": "align", "removed": entries, "dry_run": True}
    assert scalar(project.settings, "SELECT count(*) FROM lf_cache_entry") == entries
    cleared = cli(project.config, "cache", "clear", "--task", "align", answer="y\n")
    assert cleared.code == 0 and f"Removed {entries} cache entries." in cleared.out
    assert scalar(project.settings, "SELECT count(*) FROM lf_cache_entry") == 0
    again = cli(project.config, "cache", "clear", "--yes")
    assert again.code == 0 and "Removed 0 cache entries." in again.out


def test_commands_are_listed_with_help(cli: Cli, project: Project) -> None:
    listing = cli(project.config, "--help")
    for name in ("export", "import", "push", "pull", "prune", "cache"):
        assert f"  {name}" in listing.out
        shown = cli(project.config, name, "--help")
        assert shown.code == 0 and "Usage:" in shown.out


def test_commands_are_registered_with_their_help_and_documented() -> None:
    from ledgerflow.cli import records
    from ledgerflow.cli.main import COMMANDS

    docs = (Path(__file__).parents[2] / "docs" / "schema.md").read_text(encoding="utf-8")
    for name, attr in (("export", "export"), ("import", "import_command"), ("push", "push"),
                       ("pull", "pull"), ("prune", "prune"), ("cache", "cache")):
        command = getattr(records, attr)
        assert COMMANDS[name] == ("ledgerflow.cli.records", attr, command.short_help), name
        assert f"ledgerflow {name} " in docs, name
    for sub in ("list", "clear"):
        assert f"ledgerflow cache {sub}" in docs
