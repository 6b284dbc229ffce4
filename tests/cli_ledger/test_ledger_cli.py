"""``ledgerflow runs/log/show/query/tag/dataflow`` on the example ledger, both dialects."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Cli, Project

#: The documented keys of each record's JSON (docs/provenance.md); they never disappear.
RUN_KEYS = {
    "kind", "id", "status", "entry_task", "arguments", "command_line", "started_at", "ended_at",
    "duration", "heartbeat_at", "host", "user", "pid", "executor", "config_hash", "code_version",
    "library_version", "root_call_hash", "result_hash", "counts", "tags",
}
TASK_RUN_KEYS = {
    "kind", "id", "run_id", "parent_id", "task_name", "task_hash", "args_hash", "call_hash",
    "value_hash", "status", "attempt", "cached_from", "started_at", "ended_at", "duration",
    "worker", "exception_type", "exception_message", "traceback", "arguments", "result", "tags", "logs",
}
VALUE_KEYS = {"kind", "hash", "type_name", "format", "preview", "size", "created_at", "path", "tags",
              "produced_by", "used_by"}


def ok(result: Any) -> Any:
    assert result.code == 0, result.err
    return result


def as_json(result: Any) -> Any:
    return json.loads(ok(result).out)


# -- runs and log ---------------------------------------------------------------------------


def test_runs_table_and_json(cli: Cli, project: Project) -> None:
    table = ok(cli("runs")).out
    for short in ("cccc0004", "bbbb0003", "aaab0002", "aaaa0001", "dddd0005"):
        assert short in table
    assert "7 cached" in table and "1 done, 2 failed, 1 skipped" in table and "12.5 s" in table
    assert "pipeline.main(fastqs=[2 File], ref=File('data/ref.fa'))" in table

    runs = as_json(cli("runs", "--json"))
    assert [r["id"][:8] for r in runs] == ["cccc0004", "bbbb0003", "aaab0002", "aaaa0001", "dddd0005"]
    assert set(runs[0]) == RUN_KEYS and runs[0]["kind"] == "run"
    assert runs[1]["counts"] == {"done": 1, "failed": 2, "skipped": 1}
    assert runs[3]["tags"][0]["key"] == "env" and runs[3]["tags"][0]["value"] == "prod"
    assert runs[3]["started_at"].endswith("+00:00")
    # the entry arguments are a JSON object, not a JSON text inside JSON
    assert runs[3]["arguments"] == {"fastqs": "[2 File]", "ref": "File('data/ref.fa')"}


def test_runs_filters(cli: Cli, project: Project) -> None:
    ids = project.example.runs
    assert [r["id"] for r in as_json(cli("runs", "--status", "failed", "--json"))] == [ids["failed"]]
    assert [r["id"] for r in as_json(cli("runs", "--tag", "env=prod", "--json"))] == [ids["old"]]
    assert [r["id"] for r in as_json(cli("runs", "--task", "merge", "--json"))] == [ids["merge"]]
    assert [r["id"] for r in as_json(cli("runs", "--since", "3h", "--json"))] == [ids["running"], ids["failed"]]
    assert [r["id"] for r in as_json(cli("runs", "--limit", "1", "--offset", "2", "--json"))] == [ids["cached"]]
    assert "No runs match." in ok(cli("runs", "--status", "interrupted")).out


def test_log_shows_the_tree_of_a_run(cli: Cli, project: Project) -> None:
    out = ok(cli("log", "bbbb")).out
    assert "run bbbb0003 pipeline.main failed" in out
    assert "pipeline.call_variants(bam=File(path=out/s3.bam)" in out
    assert "ValueError: no reads pass the quality filter" in out
    assert "skipped" in out
    lines = out.splitlines()
    main_line = next(i for i, line in enumerate(lines) if "pipeline.main(" in line)
    child_line = next(i for i, line in enumerate(lines) if "pipeline.align(" in line)
    assert lines[child_line].index("pipeline") > lines[main_line].index("pipeline")  # indented under it

    cached = ok(cli("log", "aaab")).out
    assert f"cache of run {project.example.runs['old'][:8]}" in cached

    data = as_json(cli("log", "aaaa0001", "--json"))
    assert data["run"]["id"] == project.example.runs["old"]
    (top,) = data["task_runs"]
    assert set(data) == {"run", "task_runs", "total", "shown", "truncated"}
    assert data["total"] == data["shown"] == 7 and data["truncated"] is False
    assert top["task_name"] == "pipeline.main" and set(top) == TASK_RUN_KEYS | {"children", "hidden"}
    assert sorted(c["task_name"] for c in top["children"]) == ["pipeline.align_all", "pipeline.call_all"]
    assert all(len(c["children"]) == 2 for c in top["children"])

    latest = ok(cli("log")).out  # no RUN: the latest run
    assert "run cccc0004" in latest and "pending" in latest


# -- show -----------------------------------------------------------------------------------


def test_show_a_failed_task_run(cli: Cli, project: Project) -> None:
    failed = project.example.task_runs["failed.call3"]
    out = ok(cli("show", failed[:8])).out
    assert f"task run:     {failed}" in out
    assert "bam = <" in out and "File(path=out/s3.bam)" in out
    assert "exception:    ValueError: no reads pass the quality filter in out/s3.bam" in out
    assert "Traceback (most recent call last):" in out
    assert "ERROR   no reads pass the quality filter" in out

    data = as_json(cli("show", failed, "--json"))
    assert set(data) == TASK_RUN_KEYS and data["kind"] == "task_run"
    assert [line["message"] for line in data["logs"]] == ["reading out/s3.bam", "no reads pass the quality filter"]
    assert data["arguments"][0]["name"] == "bam" and data["arguments"][0]["value"]["path"] == "out/s3.bam"


def test_show_each_kind(cli: Cli, project: Project) -> None:
    ex = project.example
    run = ok(cli("show", "bbbb")).out
    assert "status:       failed" in run and "failed: " in run and "env=dev" in run
    assert as_json(cli("show", "bbbb", "--json"))["kind"] == "run"

    call = as_json(cli("show", ex.calls["align_all"], "--json"))
    assert call["kind"] == "call" and call["parents"] == [ex.calls["main"]]
    assert "children:" in ok(cli("show", ex.calls["align_all"])).out

    value = as_json(cli("show", ex.values["m0"][:10], "--json"))
    assert set(value) == VALUE_KEYS and value["produced_by"] == [ex.calls["task0"]]

    file = ok(cli("show", "out/s1.vcf")).out
    assert "file:         out/s1.vcf" in file and "made by task run" in file
    assert as_json(cli("show", "out/s1.vcf", "--json"))["kind"] == "file"


def test_show_bad_ids_fail_on_one_line(cli: Cli, project: Project) -> None:
    ambiguous = cli("show", "aaa")
    assert ambiguous.code == 2 and ambiguous.out == ""
    assert ambiguous.err.startswith("Error: 'aaa' matches several records") and ambiguous.err.count("\n") == 1
    assert "run aaaa00010000" in ambiguous.err and "run aaab00020000" in ambiguous.err
    missing = cli("show", "out/never.vcf")
    assert missing.code == 2 and missing.err.startswith("Error: no record matches 'out/never.vcf'")
    assert "Traceback" not in missing.err


# -- query ----------------------------------------------------------------------------------


def test_query_filters(cli: Cli, project: Project) -> None:
    ex = project.example
    failed = as_json(cli("query", "--status", "failed", "--json"))
    assert [tr["id"] for tr in failed] == [ex.task_runs["failed.call3"], ex.task_runs["failed.main"]]
    assert set(failed[0]) == TASK_RUN_KEYS and failed[0]["logs"] is None
    table = ok(cli("query", "--status", "failed")).out
    assert "ValueError: no reads pass" in table and ex.task_runs["failed.call3"][:8] in table

    by_task = as_json(cli("query", "--task", "align", "--run", "aaaa", "--json"))
    assert {tr["id"] for tr in by_task} == {ex.task_runs["old.align1"], ex.task_runs["old.align2"]}
    by_file = as_json(cli("query", "--file", "out/*.bam", "--status", "failed", "--json"))
    assert [tr["task_name"] for tr in by_file] == ["pipeline.call_variants"]
    by_tag = as_json(cli("query", "--tag", "env=dev", "--since", "3h", "--json"))
    assert {tr["run_id"] for tr in by_tag} == {ex.runs["failed"]} and len(by_tag) == 3
    assert "No task runs match." in ok(cli("query", "--task", "nothing_like_it")).out


def test_query_bad_options(cli: Cli) -> None:
    bad_since = cli("query", "--since", "last tuesday")
    assert bad_since.code == 2 and bad_since.err.startswith("Error: --since: cannot read 'last tuesday'")
    bad_status = cli("query", "--status", "finished")
    assert bad_status.code == 2 and "unknown status 'finished'" in bad_status.err
    bad_run = cli("query", "--run", "ffff")
    assert bad_run.code == 2 and "no run matches 'ffff'" in bad_run.err


# -- tag ------------------------------------------------------------------------------------


def test_tag_and_remove(cli: Cli, project: Project) -> None:
    added = ok(cli("tag", "out/s2.vcf", "qc=pass", "owner=ana")).out
    assert "file" in added and "owner=ana qc=pass" in added
    data = as_json(cli("tag", "cccc", "env=staging", "--json"))
    assert data["kind"] == "run" and [(t["key"], t["value"]) for t in data["tags"]] == [("env", "staging")]
    assert [r["id"] for r in as_json(cli("runs", "--tag", "env=staging", "--json"))] == [project.example.runs["running"]]
    removed = ok(cli("tag", "out/s2.vcf", "owner", "--remove")).out
    assert "Removed 1 tag(s)" in removed and "qc=pass" in removed and "owner" not in removed.splitlines()[-1]
    bad = cli("tag", "cccc", "novalue")
    assert bad.code == 2 and "is not key=value" in bad.err


# -- dataflow -------------------------------------------------------------------------------


def test_dataflow_text_json_and_downstream(cli: Cli, project: Project) -> None:
    ex = project.example
    out = ok(cli("dataflow", "out/s2.vcf")).out
    assert out.startswith(f"value = <{ex.values['vcf2'][:8]}> File(path=out/s2.vcf)")
    assert f"bam <-- argument of <{ex.calls['call_all'][:8]}> call_all(bams, ref)" in out
    assert "fastq <-- argument of" in out and out.count("ref <-- ") == 1

    data = as_json(cli("dataflow", "out/s2.vcf", "--json"))
    assert data["root"] == ex.values["vcf2"] and data["direction"] == "upstream"
    assert {v["name"] for v in data["values"]} == {"value", "bam", "ref", "fastq"}
    assert data["text"][0] == out.splitlines()[0]

    down = ok(cli("dataflow", "data/s1.fastq", "--downstream")).out
    assert f"--> <{ex.calls['align1'][:8]}> align(fastq=value, ref) --> bam" in down
    assert ex.calls["align2"][:8] not in down
    missing = cli("dataflow", "nope.txt")
    assert missing.code == 2 and missing.err.startswith("Error: no record matches 'nope.txt'")


def test_help_lists_the_commands(cli: Cli) -> None:
    out = ok(cli("--help")).out
    for name in ("runs", "log", "show", "query", "tag", "dataflow"):
        assert f"  {name} " in out
    assert "--downstream" in ok(cli("dataflow", "--help")).out


def test_docs_describe_every_command_and_its_help_matches() -> None:
    from pathlib import Path

    from ledgerflow.cli import ledger as commands
    from ledgerflow.cli.main import COMMANDS

    docs = (Path(__file__).parents[2] / "docs" / "provenance.md").read_text(encoding="utf-8")
    for name in ("runs", "log", "show", "query", "tag", "dataflow"):
        assert f"ledgerflow {name}" in docs, name
        command = getattr(commands, name)
        assert COMMANDS[name] == ("ledgerflow.cli.ledger", name, command.short_help)


def test_not_found_is_a_usage_error_not_a_database_error(cli: Cli) -> None:
    # exit 4 means "the database cannot be reached"; an id that names nothing is bad input
    for args in (("show", "zzzz"), ("show", "ffffffff"), ("log", "ffff"), ("tag", "ffff", "a=b")):
        result = cli(*args)
        assert result.code == 2, (args, result)
        assert result.err.startswith("Error: ") and result.err.count("\n") == 1
