"""The dashboard on a large ledger, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/dashboard.py [--calls 100000] [--requests 30]
        [--clients 20] [--seconds 30] [--dialect all|sqlite|postgresql] [--no-browser]

Generates the ledger of ``benchmarks/ledger.py`` (``--calls`` calls, one run per ten calls),
adds one run of 10,000 task runs (align -> call_variants -> summarize over 3,333 samples,
results passed on as arguments) and one task run with 100,000 log lines, then prints, each
against its target:

* server time (in process, through Starlette's TestClient: routing, the API, templates) of
  the runs page, the 10,000-call run's page, its graph JSON and the task run with 100,000
  log lines: the first request, then p50 and p95 over ``--requests`` more (target: p95 <=
  150 ms). A finished run's graph is computed once per process, so only the first graph
  request measures computing it;
* the 10,000-call run's graph interactive in Chromium (``/usr/bin/chromium``): from
  navigation to the graph drawn (target <= 2 s), median of 3;
* ``--clients`` concurrent clients for ``--seconds`` on loopback against uvicorn, cycling
  over those pages: requests served and errors (target: 0 errors).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from ledger import project, scratch_entry
from ledgerflow.ledger.schema import TaskRun
from ledgerflow.testing.workload import LedgerWriter, generate_workload

SERVER_TARGET_MS = 150.0
BROWSER_TARGET_S = 2.0
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def big_run(settings: Any, samples: int = 3333, log_lines: int = 100_000) -> tuple[str, str]:
    """A run of ``3 * samples + 1`` task runs, and a task run with ``log_lines`` lines."""
    writer = LedgerWriter(seed=99)
    now = writer.now
    main = writer.task("big_main", ("n",))
    align, call, summarize = (writer.task(name, ("x",)) for name in ("align", "call_variants", "summarize"))
    run_id = writer.run("pipeline.big_main", started_at=now - timedelta(minutes=5), seconds=240)
    top = writer.task_run(run_id, main, None, task_name="pipeline.big_main", status="done",
                          args_hash=writer.arguments([writer.value(samples)]), started_at=now - timedelta(minutes=5),
                          seconds=240)
    noisy = ""
    for k in range(samples):
        at = now - timedelta(minutes=5) + timedelta(milliseconds=60 * k)
        fastq = writer.file(f"big/s{k}.fastq", f"reads {k}", at=at)
        bam = writer.file(f"big/s{k}.bam", f"bam {k}", at=at)
        vcf = writer.file(f"big/s{k}.vcf", f"vcf {k}", at=at)
        summary = writer.value(f"summary {k}")
        for task, name, arg, out, offset in ((align, "align", fastq, bam, 0), (call, "call_variants", bam, vcf, 20),
                                             (summarize, "summarize", vcf, summary, 40)):
            made = writer.call(task, [arg], out, at=at)
            tr = writer.task_run(run_id, task, made, task_name=f"pipeline.{name}", parent_id=top,
                                 started_at=at + timedelta(milliseconds=offset), seconds=0.02)
            writer.rows[TaskRun][-1]["worker"] = f"w{k % 8}"
            if not noisy:
                noisy = tr
    for line in range(log_lines):
        writer.log(run_id, noisy, f"progress line {line}", at=now - timedelta(minutes=4))
    writer.write(settings)
    return run_id, noisy


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def server_times(app: Any, urls: dict[str, str], requests: int) -> None:
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        for label, url in urls.items():
            started = time.perf_counter()
            response = client.get(url)
            first = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (url, response.status_code, response.text[:200])
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200
            p50, p95 = percentiles(times)
            ok = "ok" if p95 <= SERVER_TARGET_MS else "OVER TARGET"
            print(f"  {label:<34} first {first:7.1f} ms  then p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
                  f"({len(response.content) // 1024} kB)  target p95 <= {SERVER_TARGET_MS:.0f} ms: {ok}")


class Server:
    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def browser_time(base: str, run_id: str) -> None:
    if not Path(CHROMIUM).exists():
        print(f"  graph in Chromium: skipped ({CHROMIUM} missing)")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        times = []
        for _ in range(3):
            page = chromium.new_page()
            started = time.perf_counter()
            page.goto(f"{base}/runs/{run_id}")
            page.wait_for_selector("#run-graph[data-ready='1']", timeout=60_000)
            times.append(time.perf_counter() - started)
            nodes = page.evaluate("() => window.ledgerflowGraphs['run-graph'].nodes().length")
            page.close()
        chromium.close()
    median = statistics.median(times)
    ok = "ok" if median <= BROWSER_TARGET_S else "OVER TARGET"
    print(f"  10,000-call run's graph interactive in Chromium: {median:.2f} s median of 3 ({nodes} nodes, "
          f"grouped)  target <= {BROWSER_TARGET_S:.0f} s: {ok}")


def load_test(base: str, urls: list[str], clients: int, seconds: float) -> None:
    try:  # the HTTP client the test extra installs (httpx2), else httpx
        import httpx2 as httpx
    except ImportError:
        import httpx  # type: ignore[no-redef]

    done = [0] * clients
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = k
            while time.monotonic() < stop:
                url = urls[i % len(urls)]
                i += 1
                try:
                    status = http.get(url).status_code
                    if status != 200:
                        errors.append(f"{url}: HTTP {status}")
                except httpx.HTTPError as exc:
                    errors.append(f"{url}: {exc!r}")
                done[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(done)
    ok = "ok" if not errors else "ERRORS"
    print(f"  {clients} clients for {seconds:.0f} s: {total} requests ({total / seconds:.1f}/s), "
          f"{len(errors)} errors  target 0 errors: {ok}")
    for error in errors[:5]:
        print(f"    {error}")


def bench(dialect: str, args: argparse.Namespace, folder: Path, stack: ExitStack) -> None:
    from ledgerflow.web.app import create_app

    entry = stack.enter_context(scratch_entry(dialect, folder, f"dash_{dialect}"))
    settings = project(folder, f"dash_{dialect}", {"default": entry})
    started = time.perf_counter()
    workload = generate_workload(settings, calls=args.calls)
    run_id, noisy = big_run(settings)
    print(f"{dialect}: {workload.calls:,} calls in {workload.runs:,} runs, plus a run of 10,000 task runs and a "
          f"task run with 100,000 log lines, written in {time.perf_counter() - started:.0f} s")
    if dialect == "postgresql":
        from ledger import analyze

        analyze(settings)
    app = create_app(settings)
    urls = {"runs page": "/runs", "10,000-call run's page": f"/runs/{run_id}",
            "its graph JSON": f"/api/runs/{run_id}/graph",
            "task run with 100,000 log lines": f"/task-runs/{noisy}"}
    server_times(app, urls, args.requests)
    with Server(app) as base:
        if args.browser:
            browser_time(base, run_id)
        load_test(base, list(urls.values()), args.clients, args.seconds)
    app.state.reader.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--dialect", choices=("all", "sqlite", "postgresql"), default="all")
    parser.add_argument("--no-browser", dest="browser", action="store_false")
    args = parser.parse_args()
    dialects = ("sqlite", "postgresql") if args.dialect == "all" else (args.dialect,)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        for dialect in dialects:
            bench(dialect, args, Path(tmp), stack)


if __name__ == "__main__":
    main()
