"""``ledgerflow.api`` gives the commands' answers: ``to_json()`` of its results is exactly what
``--json`` prints (the dashboard serves the same), from settings or from an open ledger."""

from __future__ import annotations

import json
from typing import Any

from ledgerflow import api
from ledgerflow.config import load_settings

from .conftest import Cli, Project


def printed(cli: Cli, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def plain(obj: Any) -> Any:
    """What a JSON round trip makes of ``to_json()`` (tuples become lists)."""
    return json.loads(json.dumps(obj.to_json() if hasattr(obj, "to_json") else obj))


def test_each_command_prints_its_api_result(cli: Cli, project: Project) -> None:
    settings = load_settings(project.config)
    failed_run = project.example.runs["failed"]
    failed_task_run = project.example.task_runs["failed.call3"]
    with api.ledger(settings) as book:  # one open ledger, as the dashboard keeps
        assert [plain(r) for r in api.runs(book)] == printed(cli, "runs")
        assert plain(api.log(book, failed_run)) == printed(cli, "log", failed_run)
        assert plain(api.show(book, failed_task_run)) == printed(cli, "show", failed_task_run)
        assert [plain(t) for t in api.query(book, status="failed")] == printed(
            cli, "query", "--status", "failed")
        assert plain(api.dataflow(book, "out/s2.vcf")) == printed(cli, "dataflow", "out/s2.vcf")
        assert api.run_info(book).id == project.example.runs["running"]  # type: ignore[union-attr]
    # from settings, the ledger is opened around the call
    assert [plain(r) for r in api.runs(settings, status="failed")] == printed(
        cli, "runs", "--status", "failed")
    assert plain(api.cache_list(settings)) == printed(cli, "cache", "list")
    change = api.tag(settings, failed_run, ["reviewed=yes"])
    assert change.kind == "run" and [str(t) for t in change.tags] == ["env=dev", "reviewed=yes"]
    assert plain(api.untag(settings, failed_run, ["reviewed"]))["removed"] == 1
