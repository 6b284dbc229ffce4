"""Every dashboard route over HTTP (Starlette's TestClient), on SQLite and PostgreSQL:
pages, their JSON twins (the CLI's ``--json`` objects), keyset pages, filters and errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from ledgerflow import Ledger
from ledgerflow.db import Database
from ledgerflow.db.times import database_now
from ledgerflow.testing.workload import LedgerWriter

from .conftest import HOSTILE_RUN, Board

RUN_KEYS = {
    "kind", "id", "status", "entry_task", "arguments", "command_line", "started_at", "ended_at",
    "duration", "heartbeat_at", "host", "user", "pid", "executor", "config_hash", "code_version",
    "library_version", "root_call_hash", "result_hash", "counts", "tags",
}


def _cli_json(obj: Any) -> Any:
    """What the CLI prints for a record: its to_json() through JSON."""
    return json.loads(json.dumps(obj, default=str))


def _error_page(response: Any, status: int) -> str:
    assert response.status_code == status, response.text[:300]
    assert "Traceback" not in response.text
    return str(response.text)


# -- runs --------------------------------------------------------------------------------------


def test_runs_page_lists_every_run_with_its_status_counts_entry_and_tags(client: TestClient, board: Board) -> None:
    page = client.get("/runs")
    assert page.status_code == 200
    html = page.text
    for run_id in board.example.runs.values():
        assert f'href="/runs/{run_id}"' in html
    assert '<span class="status st-failed">failed</span>' in html
    assert '<span class="count st-cached" title="cached">7 cached</span>' in html
    assert "env=prod" in html and "pipeline.main(fastqs=[2 File], ref=File(&#39;data/ref.fa&#39;))" in html
    assert 'id="runs-per-day"' in html and 'class="st-done"' in html


def test_runs_json_is_what_the_cli_prints(client: TestClient, board: Board) -> None:
    got = client.get("/api/runs").json()
    with Ledger.open(board.settings, reap_stale=False) as ledger:
        expected = [_cli_json(run.to_json()) for run in ledger.runs(limit=50)]
    assert got == expected
    assert all(set(run) == RUN_KEYS for run in got)
    per_day = client.get("/api/runs-per-day?days=7").json()
    assert len(per_day) == 7 and sum(sum(d["counts"].values()) for d in per_day) == len(got)


def test_runs_are_keyset_paginated(client: TestClient, board: Board) -> None:
    seen: list[str] = []
    url: str | None = "/api/runs?limit=2"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [run["id"] for run in response.json()]
        link = response.headers.get("link")
        url = link[1:link.index(">")] if link else None
        assert url is None or ("after=" in url and "offset" not in url)
        pages += 1
    everything = [run["id"] for run in client.get("/api/runs").json()]
    assert seen == everything and len(set(seen)) == 6 and pages == 3
    html = client.get("/runs?limit=4").text
    assert "Older runs" in html
    fragment = client.get("/runs?limit=4&after=" + quote(html.split("after=")[1].split('"')[0].replace("&amp;", "&")),
                          headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and fragment.text.count('class="run-row"') == 2


def test_runs_filters(client: TestClient, board: Board) -> None:
    runs = board.example.runs

    def ids(query: str) -> set[str]:
        response = client.get("/api/runs?" + query)
        assert response.status_code == 200, response.text
        return {run["id"] for run in response.json()}

    assert ids("status=failed") == {runs["failed"], HOSTILE_RUN}
    assert ids("status=failed&status=running") == {runs["failed"], HOSTILE_RUN, runs["running"]}
    assert ids("tag=env=prod") == {runs["old"]}
    assert ids("task=merge") == {runs["merge"]}
    assert ids("since=6h") == {runs["failed"], runs["running"], HOSTILE_RUN}
    assert ids("until=2d&since=5d") == {runs["old"], runs["merge"]}
    html = client.get("/runs?status=failed&tag=env%3Ddev").text
    assert f'href="/runs/{runs["failed"]}"' in html and f'href="/runs/{runs["old"]}"' not in html
    assert 'value="failed" checked' in html


def test_malformed_filters_are_400_pages(client: TestClient) -> None:
    assert "unknown status &#39;bogus&#39;" in _error_page(client.get("/runs?status=bogus"), 400)
    assert "cannot read" in _error_page(client.get("/runs?since=yesterdayish"), 400)
    assert client.get("/api/runs?limit=abc").json()["error"] == "limit must be a whole number, got 'abc'"
    assert client.get("/api/runs?limit=0").status_code == 400
    assert client.get("/api/runs?after=not-a-cursor").json()["hint"] == "follow the 'next' links"
    assert client.get("/api/runs?tag==x").status_code == 400


# -- one run -----------------------------------------------------------------------------------


def test_failed_run_shows_its_failures_first(client: TestClient, board: Board) -> None:
    run_id = board.example.runs["failed"]
    short = client.get("/runs/bbbb", follow_redirects=False)
    assert short.status_code == 307 and short.headers["location"] == f"/runs/{run_id}"
    html = client.get(f"/runs/{run_id}").text
    assert "ValueError: no reads pass the quality filter in out/s3.bam" in html
    assert html.index('class="failures"') < html.index('id="run-timeline"') < html.index('id="run-graph"')
    assert client.get(f"/api/runs/{run_id}").json() == _cli_json(
        Ledger.open(board.settings, reap_stale=False).run(run_id).to_json())


def test_run_graph_json_has_a_node_per_task_run_and_data_edges(client: TestClient, board: Board) -> None:
    ex = board.example
    graph = client.get(f"/api/runs/{ex.runs['failed']}/graph").json()
    assert graph["grouped"] is False and graph["task_runs"] == 4
    statuses = sorted(node["status"] for node in graph["nodes"])
    assert statuses == ["done", "failed", "failed", "skipped"]
    edges = {(e["source"], e["target"], e["kind"]) for e in graph["edges"]}
    trs = ex.task_runs
    assert (trs["failed.align3"], trs["failed.call3"], "data") in edges
    assert (trs["failed.main"], trs["failed.call3"], "call") in edges
    merge = client.get(f"/api/runs/{ex.runs['merge']}/graph").json()
    data = {(e["source"], e["target"]) for e in merge["edges"] if e["kind"] == "data"}
    assert data == {(trs["merge.task0"], trs["merge.task1"]), (trs["merge.task0"], trs["merge.task2"]),
                    (trs["merge.task1"], trs["merge.task3"]), (trs["merge.task2"], trs["merge.task3"])}


def test_a_large_run_is_grouped_by_task_and_expandable(client: TestClient, board: Board) -> None:
    writer = LedgerWriter(now=board.example.now, seed=5)
    top_task, leaf, use, gather = (writer.task(name) for name in ("fan", "leaf", "use", "gather"))
    run_id = writer.run("pipeline.fan", status="failed", started_at=board.example.now - timedelta(hours=1))
    top = writer.task_run(run_id, top_task, None, task_name="pipeline.fan", status="failed",
                          args_hash=writer.arguments([]), error=("RuntimeError", "1 failed"))
    made = []
    for k in range(399):
        value = writer.value(k)
        call = writer.call(leaf, [writer.value(f"in{k}")], value)
        writer.task_run(run_id, leaf, call if k else None, task_name="pipeline.leaf", parent_id=top,
                        status="done" if k else "failed", args_hash=writer.args_hash(call),
                        error=None if k else ("ValueError", "leaf 0"))
        made.append(value)
    for k in range(1, 51):  # 50 task runs each taking one leaf's result
        call = writer.call(use, [made[k]], writer.value(f"used {k}"))
        writer.task_run(run_id, use, call, task_name="pipeline.use", parent_id=top)
    bundle = writer.container(made[1:11])  # one taking ten leaves' results in a list
    writer.task_run(run_id, gather, writer.call(gather, [bundle], writer.value("all")), task_name="pipeline.gather",
                    parent_id=top)
    writer.write(board.settings)
    graph = client.get(f"/api/runs/{run_id}/graph").json()
    assert graph["grouped"] is True and graph["task_runs"] == 451
    groups = {node["id"]: node for node in graph["nodes"]}
    assert set(groups) == {"group:pipeline.fan", "group:pipeline.leaf", "group:pipeline.use", "group:pipeline.gather"}
    assert groups["group:pipeline.leaf"]["counts"] == {"done": 398, "failed": 1}
    assert groups["group:pipeline.leaf"]["status"] == "failed" and groups["group:pipeline.leaf"]["count"] == 399
    edges = {(e["source"], e["target"], e["kind"]): e["count"] for e in graph["edges"]}
    assert edges == {("group:pipeline.fan", "group:pipeline.leaf", "call"): 399,
                     ("group:pipeline.fan", "group:pipeline.use", "call"): 50,
                     ("group:pipeline.fan", "group:pipeline.gather", "call"): 1,
                     ("group:pipeline.leaf", "group:pipeline.use", "data"): 50,
                     ("group:pipeline.leaf", "group:pipeline.gather", "data"): 10}
    expanded = client.get(f"/api/runs/{run_id}/graph?expand=pipeline.leaf").json()
    kinds = [node["kind"] for node in expanded["nodes"]]
    assert kinds.count("task_run") == 300 and kinds.count("more") == 1 and kinds.count("group") == 3
    more = next(node for node in expanded["nodes"] if node["kind"] == "more")
    assert more["count"] == 99
    shown = {node["id"] for node in expanded["nodes"] if node["kind"] != "group"}  # leaves and "more"
    to_use = [e for e in expanded["edges"] if e["target"] == "group:pipeline.use" and e["source"] in shown]
    assert sum(e["count"] for e in to_use) == 50 and all(e["kind"] == "data" for e in to_use)


def test_timeline_puts_each_task_run_on_its_lane_and_cache_hits_apart(client: TestClient, board: Board) -> None:
    ex = board.example
    old = client.get(f"/api/runs/{ex.runs['old']}/timeline").json()
    assert old["lanes"] == ["worker-1"] and old["total"] == 7 and len(old["bars"]) == 7
    assert all(0 <= bar["start"] <= bar["end"] <= old["span"] for bar in old["bars"])
    cached = client.get(f"/api/runs/{ex.runs['cached']}/timeline").json()
    assert cached["lanes"] == ["cache hits"] and {bar["status"] for bar in cached["bars"]} == {"cached"}
    html = client.get(f"/runs/{ex.runs['old']}").text
    assert html.count('class="bar st-done"') == 7


def test_live_fragment_polls_until_the_run_ends(client: TestClient, board: Board) -> None:
    running = client.get(f"/runs/{board.example.runs['running']}")
    assert 'hx-trigger="every 2s"' in running.text and 'data-live="1"' in running.text
    live = client.get(f"/runs/{board.example.runs['running']}/live", headers={"HX-Request": "true"})
    assert live.status_code == 200 and "<html" not in live.text and 'id="run-status">running<' in live.text
    running_graph = f"/api/runs/{board.example.runs['running']}/graph"
    assert client.get(running_graph).json()["finished"] is False
    database = Database(board.settings)
    with database.engine().begin() as conn:
        conn.exec_driver_sql("UPDATE lf_task_run SET status = 'running' WHERE id = "
                             f"'{board.example.task_runs['running.align1']}'")
    database.dispose()
    statuses = sorted(node["status"] for node in client.get(running_graph).json()["nodes"])
    assert statuses == ["running", "running"]  # a running run's graph is never served from the cache
    assert client.get(f"/api/runs/{board.example.runs['old']}/graph").json()["finished"] is True
    done = client.get(f"/runs/{board.example.runs['old']}/live")
    assert done.status_code == 286  # htmx stops polling
    assert 'hx-trigger' not in client.get(f"/runs/{board.example.runs['old']}").text
    assert 'id="run-stale"' not in running.text


def test_a_running_run_without_heartbeat_is_shown_as_probably_dead(client: TestClient, board: Board) -> None:
    writer = LedgerWriter(now=board.example.now, seed=13)
    run_id = writer.run("pipeline.lost", status="running", started_at=board.example.now - timedelta(hours=2),
                        seconds=30)  # its last heartbeat: 2 hours ago, 30 s after it started
    writer.write(board.settings)
    page = client.get(f"/runs/{run_id}").text
    assert "No heartbeat for 1h 59m: the process running it has probably died" in page
    assert client.get(f"/runs/{run_id}/live").status_code == 286  # no point polling a dead run
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "running"  # nothing was written


def _skew_client_clock(monkeypatch: pytest.MonkeyPatch, skew: timedelta) -> None:
    """The dashboard's process reads a clock ``skew`` away from the database's."""

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + skew

    for module in ("ledgerflow.api.browsing", "ledgerflow.db.times", "ledgerflow.ledger.heartbeat"):
        monkeypatch.setattr(f"{module}.datetime", Skewed, raising=False)


def _write_running_run(board: Board, name: str, silent: timedelta, seed: int) -> str:
    """A running run whose last heartbeat is ``silent`` old by the database's clock."""
    database = Database(board.settings)
    with database.engine().connect() as conn:
        now = database_now(conn)
    database.dispose()
    writer = LedgerWriter(now=now, seed=seed)
    run_id = writer.run(name, status="running", started_at=now - silent - timedelta(seconds=30), seconds=30)
    writer.write(board.settings)
    return run_id


@pytest.mark.parametrize("skew", [timedelta(hours=2), timedelta(hours=-2)])
def test_probably_dead_is_judged_by_the_database_clock_not_the_dashboards(
    client: TestClient, board: Board, monkeypatch: pytest.MonkeyPatch, skew: timedelta,
) -> None:
    fresh = _write_running_run(board, "pipeline.alive", timedelta(seconds=5), seed=17)
    stale = _write_running_run(board, "pipeline.lost", timedelta(hours=2), seed=19)
    _skew_client_clock(monkeypatch, skew)
    alive = client.get(f"/runs/{fresh}/live", headers={"HX-Request": "true"})
    assert alive.status_code == 200 and 'id="run-stale"' not in alive.text  # still polled
    lost = client.get(f"/runs/{stale}").text
    assert "No heartbeat for 2h 00m: the process running it has probably died" in lost


# -- task runs, calls, values, files -----------------------------------------------------------


def test_task_run_page_shows_arguments_exception_logs_and_why(client: TestClient, board: Board) -> None:
    trs = board.example.task_runs
    html = client.get(f"/task-runs/{trs['failed.call3']}").text
    assert "ValueError: no reads pass the quality filter in out/s3.bam" in html
    assert '<pre class="traceback">Traceback (most recent call last):' in html
    assert "reading out/s3.bam" in html and 'href="/files/out/s3.bam"' in html
    assert "2 lines" in html
    cached = client.get(f"/api/task-runs/{trs['cached.align1']}").json()
    assert cached["cached_from"] == board.example.runs["old"] and cached["logs"] is None
    why = client.get(f"/api/task-runs/{trs['cached.align1']}/why").json()["why"]
    assert why == "from the cache of run aaaa0001: the same code had already run on the same arguments"
    assert 'hx-get="/task-runs/' in client.get(f"/task-runs/{trs['cached.align1']}").text
    assert client.get(f"/task-runs/{trs['cached.align1']}/why").text.strip() == why
    for first in ("old.align1", "old.align2", "merge.task3"):  # siblings in the run are not compared
        assert client.get(f"/api/task-runs/{trs[first]}/why").json()["why"] == \
            "executed: this task had never run before with this code"
    assert client.get(f"/api/task-runs/{trs['failed.align3']}/why").json()["why"] == \
        "executed: argument 'fastq' changed (File(path=data/s2.fastq) -> File(path=data/s3.fastq)) (compared with run aaaa0001)"
    assert client.get(f"/api/task-runs/{trs['failed.summarize3']}/why").json()["why"].startswith("not run")
    files = client.get(f"/api/task-runs/{trs['old.main']}").json()["files"]  # files inside lists too
    assert [f["path"] for f in files["inputs"]] == ["data/ref.fa", "data/s1.fastq", "data/s2.fastq"]
    assert [f["path"] for f in files["outputs"]] == ["out/s1.vcf", "out/s2.vcf"]
    assert 'output <a href="/files/out/s2.vcf">' in client.get(f"/task-runs/{trs['old.main']}").text


def test_task_run_logs_are_paginated(client: TestClient, board: Board) -> None:
    writer = LedgerWriter(now=board.example.now, seed=9)
    tr = board.example.task_runs["old.align2"]
    for k in range(450):
        writer.log(board.example.runs["old"], tr, f"line {k}")
    writer.write(board.settings)
    first = client.get(f"/api/task-runs/{tr}/logs").json()
    assert first["total"] == 450 and len(first["lines"]) == 200 and first["lines"][0]["message"] == "line 0"
    rest = client.get(f"/api/task-runs/{tr}/logs?after={first['next_after']}&limit=500").json()
    assert len(rest["lines"]) == 250 and rest["next_after"] is None and rest["lines"][-1]["message"] == "line 449"
    html = client.get(f"/task-runs/{tr}").text
    assert html.count('class="log-line') == 200 and "More lines" in html
    more = client.get(f"/task-runs/{tr}/logs?after={first['next_after']}", headers={"HX-Request": "true"})
    assert more.text.count('class="log-line') == 200 and "<html" not in more.text


def test_file_page_shows_its_dataflow_as_the_cli_does(client: TestClient, board: Board) -> None:
    with Ledger.open(board.settings, reap_stale=False) as ledger:
        flow = ledger.dataflow("out/s1.vcf")
        down = ledger.dataflow("data/ref.fa", downstream=True)
    html = client.get("/files/out/s1.vcf").text
    assert "value &lt;-- &lt;" in html and "align(fastq, ref)" in html
    assert client.get("/api/dataflow?target=out/s1.vcf").json() == _cli_json(flow.to_json())
    assert client.get("/api/dataflow?target=data/ref.fa&direction=downstream").json() == _cli_json(down.to_json())
    value = client.get(f"/values/{board.example.values['ref']}?direction=downstream").text
    assert "call_variants" in value and 'id="dataflow-graph"' in value
    assert client.get("/api/files/out/s1.vcf").json()["path"] == "out/s1.vcf"
    assert client.get(f"/api/values/{board.example.values['m3']}").json()["kind"] == "value"
    call = client.get(f"/calls/{board.example.calls['main']}").text
    assert "fastqs" in call and "/task-runs/" in call
    assert client.get(f"/api/calls/{board.example.calls['main']}").json()["kind"] == "call"


def test_find_goes_to_the_page_of_a_record(client: TestClient, board: Board) -> None:
    assert client.get("/find?q=bbbb", follow_redirects=False).headers["location"] == f"/runs/{board.example.runs['failed']}"
    assert client.get("/find?q=out/s1.vcf", follow_redirects=False).headers["location"].startswith("/values/")
    assert client.get("/find?q=ffff0000").status_code == 404


def test_cache_page_and_json(client: TestClient, board: Board) -> None:
    data = client.get("/api/cache").json()
    tasks = {t["task"]: t for t in data["tasks"]}
    assert tasks["pipeline.align"]["hits"] == 2 and tasks["pipeline.align"]["misses"] == 3
    assert {"task", "entries", "size", "hits", "misses", "hit_rate", "latest_entry"} == set(tasks["pipeline.align"])
    days = data["per_day"]["pipeline.align"]
    assert len(days) == 30 and sum(d["counts"]["hits"] for d in days) == 2
    html = client.get("/cache").text
    assert "<code>pipeline.align</code>" in html and 'class="st-hits"' in html


# -- errors, escaping, headers -----------------------------------------------------------------


def test_unknown_routes_and_ids_are_404_pages(client: TestClient, board: Board) -> None:
    assert "no page at /nowhere" in _error_page(client.get("/nowhere"), 404)
    assert client.get("/api/nowhere").json()["status"] == 404
    _error_page(client.get("/runs/ffffffff"), 404)
    _error_page(client.get("/runs/not-hex!"), 404)
    _error_page(client.get("/task-runs/" + board.example.runs["old"]), 404)
    _error_page(client.get("/files/no/such/file.txt"), 404)
    _error_page(client.get(f"/values/{board.example.task_runs['old.main']}"), 404)
    assert client.get("/api/dataflow").status_code == 400
    assert client.get("/api/dataflow?target=out/s1.vcf&direction=sideways").status_code == 400
    assert client.post("/runs").status_code == 405


def test_everything_from_the_ledger_is_escaped(client: TestClient, board: Board) -> None:
    pages = ["/runs?status=failed", f"/runs/{HOSTILE_RUN}", f"/task-runs/{board.hostile_task_run}",
             f"/runs/{HOSTILE_RUN}/live", "/cache"]
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 286), url
        assert "<script>window" not in response.text, url
        assert "<img src=x" not in response.text, url
    task_run = client.get(f"/task-runs/{board.hostile_task_run}").text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in task_run
    assert "&#34;&gt;&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in task_run
    assert client.get(f"/api/task-runs/{board.hostile_task_run}").headers["content-type"] == "application/json"


def test_security_headers_forbid_inline_scripts(client: TestClient) -> None:
    headers = client.get("/runs").headers
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert client.get("/static/htmx.min.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


def test_a_run_page_looks_the_run_up_once_and_reads_only_what_it_shows(client: TestClient, board: Board) -> None:
    """The run is found by its full id with one primary-key lookup, and no other table than
    the run's, its task runs' and its tags' is read (an id used to be resolved three times,
    each time against runs, task runs, calls and values)."""
    from sqlalchemy import event

    run_id = board.example.runs["old"]
    client.get(f"/runs/{run_id}")  # the ledger is open
    engine = client.app.state.reader.ledger().database.engine()  # type: ignore[attr-defined]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        page = client.get(f"/runs/{run_id}")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert page.status_code == 200 and "run-timeline" in page.text
    touched = [s for s in statements if "lf_call" in s or "lf_value" in s]
    assert not touched, touched
    assert len(statements) <= 8, statements  # run, its counts and tags, its timeline


def test_a_truncated_timeline_still_counts_every_task_run_that_started(board: Board) -> None:
    from ledgerflow.provenance.run_graph import timeline

    with Ledger.open(board.settings, reap_stale=False) as book:
        session = book.database.session()
        try:
            run_id = board.example.runs["old"]
            for limit, bars in ((3, 3), (7, 7), (50, 7)):
                found = timeline(session, run_id, limit=limit)
                assert (found.total, len(found.bars), found.truncated) == (7, bars, bars < 7)
        finally:
            session.close()
