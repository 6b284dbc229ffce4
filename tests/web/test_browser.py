"""The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

One server (with an access token) and one browser for the whole module, on a SQLite copy of
examples/ where the genomics pipeline ran, plus the example ledger and a run whose texts are
HTML/script payloads. Screenshots go to the test's directory, and to docs/ when
``LEDGERFLOW_DOCS_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerflow import migrations
from ledgerflow.config import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.ledger.schema import Run
from ledgerflow.testing.plugin import ci_enabled
from ledgerflow.testing.projects import forgetting_models
from ledgerflow.testing.workload import ExampleLedger, LedgerWriter, write_example_ledger

from .conftest import HOSTILE_RUN, write_hostile_run

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TOKEN = "browser-test-token"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = Path(__file__).resolve().parents[2] / "docs"
COLOURS = {"done": "rgb(46,158,79)", "failed": "rgb(211,58,44)", "skipped": "rgb(163,73,164)",
           "running": "rgb(217,162,27)", "pending": "rgb(154,160,166)", "cached": "rgb(31,143,179)"}


def _unavailable(reason: str) -> None:
    """Skip the module, except with CI=true, where a browser test that cannot run fails."""
    if ci_enabled():
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not Path(CHROMIUM).exists():
    _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
try:
    from playwright import sync_api
except ImportError:
    _unavailable("playwright is not installed (pip install -e '.[test]')")


@dataclass
class Site:
    url: str
    root: Path
    settings: Settings
    example: ExampleLedger
    hostile_task_run: str
    shots: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project(root: Path) -> Settings:
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(
        "ledgerflow.db*", "out", ".ledgerflow", "__pycache__", "quickstart.sh"))
    config = yaml.safe_load((root / "ledgerflow.yml").read_text())
    config["databases"]["default"] = {"dialect": "sqlite", "path": str(root / "ledgerflow.db")}
    (root / "ledgerflow.yml").write_text(yaml.safe_dump(config))
    settings = load_settings(root / "ledgerflow.yml")
    migrations.upgrade(settings)
    env = {**os.environ, "LEDGERFLOW_CONFIG": str(root / "ledgerflow.yml")}
    subprocess.run([sys.executable, "-m", "ledgerflow", "run", "genomics/pipeline.py:main"], cwd=root, env=env,
                   check=True, capture_output=True, timeout=120)
    return settings


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    # The project's plugins (tuto.data_reduction, ...) are imported in this process: unload
    # them after the module, or other tests' copies of the examples would resolve to these.
    with forgetting_models():
        yield from _serve(tmp_path_factory)


def _serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import uvicorn

    from ledgerflow.web.app import create_app

    base = tmp_path_factory.mktemp("dashboard")
    settings = _project(base / "examples")
    example = write_example_ledger(settings)
    hostile = write_hostile_run(settings, example.now)
    app = create_app(settings, token=TOKEN)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    shots = base / "shots"
    shots.mkdir()
    try:
        yield Site(f"http://127.0.0.1:{port}", base / "examples", settings, example, hostile, shots)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.reader.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A page logged in with the token (its first visit sets the cookie), with the browser's
    console errors collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.errors = []  # uncaught script errors and console errors (a CSP violation is one)
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    tab.goto(f"{site.url}/runs?token={TOKEN}")
    assert tab.url == f"{site.url}/runs"
    yield tab
    context.close()


def _wait(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` (a JS arrow function) until it is true. (Playwright's own
    wait_for_function evaluates a string, which the dashboard's CSP forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def _shot(page: Any, site: Site, name: str) -> None:
    page.screenshot(path=str(site.shots / f"dashboard-{name}.png"))
    if os.environ.get("LEDGERFLOW_DOCS_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS / f"dashboard-{name}.png"))


def _graph_nodes(page: Any, graph: str = "run-graph") -> list[dict[str, str]]:
    page.wait_for_selector(f"#{graph}[data-ready='1']", timeout=10_000)
    return page.evaluate(
        "(id) => window.ledgerflowGraphs[id].nodes().map(n => ({id: n.id(), status: n.data('status') || '',"
        " colour: n.style('background-color').replace(/ /g, ''), label: n.data('label')}))", graph)


def test_runs_table_and_its_filters(page: Any, site: Site) -> None:
    rows = page.locator("tr.run-row")
    assert rows.count() == 7  # the genomics run, the example ledger's five, the hostile one
    assert page.locator("#runs-per-day rect").count() >= 3
    page.goto(f"{site.url}/runs?task=main")
    assert page.locator("tr.run-row").count() == 5  # not the merge run, nor the hostile one
    _shot(page, site, "runs")
    page.goto(f"{site.url}/runs")
    page.locator("input[name=status][value=failed]").check()
    page.locator("#run-filters button[type=submit]").click()
    page.wait_for_url(f"{site.url}/runs?status=failed")  # empty filters stay out of the address
    _wait(page, "() => document.querySelectorAll('tr.run-row').length === 2")
    statuses = page.eval_on_selector_all("tr.run-row", "rows => rows.map(r => r.dataset.status)")
    assert statuses == ["failed", "failed"]
    assert page.errors == []


def test_a_failed_run_shows_its_exception_and_its_graph_in_colour(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/runs/{site.example.runs['failed']}")
    failure = page.locator(".failures .exception")
    assert failure.first.inner_text() == "ValueError: no reads pass the quality filter in out/s3.bam"
    nodes = _graph_nodes(page)
    assert sorted(n["status"] for n in nodes) == ["done", "failed", "failed", "skipped"]
    assert all(n["colour"] == COLOURS[n["status"]] for n in nodes), nodes
    assert page.locator("#run-timeline rect.bar").count() == 3  # the skipped one never started
    assert page.locator("#run-timeline rect.st-failed").count() == 2
    _shot(page, site, "run")
    assert page.errors == []


def test_a_large_run_is_drawn_grouped_and_expands_on_click(page: Any, site: Site) -> None:
    writer = LedgerWriter(now=site.example.now, seed=21)
    top_task, leaf = writer.task("wide"), writer.task("piece")
    run_id = writer.run("pipeline.wide", started_at=site.example.now - timedelta(hours=3))
    top = writer.task_run(run_id, top_task, None, task_name="pipeline.wide", status="done",
                          args_hash=writer.arguments([]))
    for k in range(350):
        call = writer.call(leaf, [writer.value(f"p{k}")], writer.value(k))
        writer.task_run(run_id, leaf, call, task_name="pipeline.piece", parent_id=top)
    writer.write(site.settings)
    page.goto(f"{site.url}/runs/{run_id}")
    nodes = _graph_nodes(page)
    assert sorted(n["label"] for n in nodes) == ["piece ×350", "wide ×1"]
    page.evaluate("() => window.ledgerflowGraphs['run-graph'].getElementById('group:pipeline.piece').emit('tap')")
    _wait(page, "() => window.ledgerflowGraphs['run-graph'].nodes().length === 302")
    assert "grouped by task" in page.locator("#graph-note").inner_text()


def test_a_running_run_updates_without_reloading(page: Any, site: Site) -> None:
    writer = LedgerWriter(now=site.example.now, seed=31)
    task = writer.task("slow")
    run_id = writer.run("pipeline.slow", status="running", started_at=site.example.now - timedelta(seconds=30))
    writer.rows[Run][-1]["heartbeat_at"] = datetime.now(UTC) + timedelta(minutes=10)  # alive throughout
    step = writer.task_run(run_id, task, None, task_name="pipeline.slow", status="running",
                           args_hash=writer.arguments([]), started_at=site.example.now - timedelta(seconds=20))
    writer.write(site.settings)
    page.goto(f"{site.url}/runs/{run_id}")
    assert page.locator("#run-status").inner_text() == "running"
    assert [n["status"] for n in _graph_nodes(page)] == ["running"]
    page.evaluate("() => { window.__sameDocument = true; }")
    database = Database(site.settings)
    with database.engine().begin() as conn:
        conn.exec_driver_sql("UPDATE lf_task_run SET status = 'done', ended_at = started_at, duration = 1.5 "
                             f"WHERE id = '{step}'")
        conn.exec_driver_sql(f"UPDATE lf_run SET status = 'done', ended_at = started_at WHERE id = '{run_id}'")
    database.dispose()
    _wait(page, "() => document.getElementById('run-status').textContent.trim() === 'done'")
    _wait(page, "() => window.ledgerflowGraphs['run-graph'].nodes()[0].data('status') === 'done'")
    assert page.evaluate("() => window.__sameDocument") is True  # no reload
    assert page.locator("#run-timeline rect.st-done").count() == 1


def test_the_dataflow_of_a_genomics_output(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/files/out/sample4.vcf")
    text = page.locator("#dataflow-text").inner_text()
    assert text.startswith("value = <") and "File('out/sample4.vcf')" in text.splitlines()[0]
    assert "call_variants(bam, reference, min_depth)" in text and "align(reads, reference, out_dir)" in text
    nodes = _graph_nodes(page, "dataflow-graph")
    labels = " ".join(n["label"] for n in nodes)
    assert "call_variants()" in labels and "align()" in labels
    _shot(page, site, "dataflow")
    page.locator("a", has_text="downstream").first.click()
    page.wait_for_url("**direction=downstream")
    assert page.locator("#dataflow-text").inner_text().startswith("value = <")
    assert page.errors == []


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "escaping-alone"])
def test_no_script_from_the_ledger_runs(browser: Any, site: Site, bypass_csp: bool) -> None:
    context = browser.new_context(bypass_csp=bypass_csp)
    page = context.new_page()
    page.goto(f"{site.url}/runs?token={TOKEN}")
    for url in ("/runs", f"/runs/{HOSTILE_RUN}", f"/task-runs/{site.hostile_task_run}", "/cache"):
        page.goto(site.url + url)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("() => typeof window.__pwned") == "undefined", url
        assert page.locator("img[src=x]").count() == 0, url
    page.goto(f"{site.url}/task-runs/{site.hostile_task_run}")
    assert "<script>window.__pwned=1</script>" in page.locator(".exception").inner_text()
    assert "<script>window.__pwned=1</script>" in page.locator("td.msg").first.inner_text()
    context.close()


def test_the_token_is_required(browser: Any, site: Site) -> None:
    context = browser.new_context()
    stranger = context.new_page()
    response = stranger.goto(f"{site.url}/runs")
    assert response.status == 401 and "Access token required" in stranger.inner_text("h1")
    response = stranger.goto(f"{site.url}/runs?token=wrong")
    assert response.status == 401
    stranger.goto(f"{site.url}/cache?token={TOKEN}")
    assert stranger.url == f"{site.url}/cache" and stranger.inner_text("h1") == "Cache"
    context.close()
