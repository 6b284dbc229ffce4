"""OpenLineage, live and replayed: the genomics example's events received by a local HTTP
catalogue, validated against the OpenLineage JSON schema, rebuilt into the run's
task/dataset graph and compared with the ledger and with the replay."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import text

from ledgerflow.db import Database

from .conftest import Cli, genomics_project

SCHEMA_FILE = Path(__file__).parent / "fixtures" / "openlineage-2-0-2.schema.json"


def _validator() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    formats = FormatChecker()

    @formats.checks("uuid", raises=ValueError)
    def is_uuid(value: object) -> bool:
        return not isinstance(value, str) or str(uuid.UUID(value)) == value

    @formats.checks("date-time", raises=ValueError)
    def is_time(value: object) -> bool:
        return not isinstance(value, str) or (datetime.fromisoformat(value).tzinfo is not None
                                              and "T" in value)

    @formats.checks("uri")
    def is_uri(value: object) -> bool:
        return not isinstance(value, str) or bool(urlparse(value).scheme)

    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=formats)


VALIDATOR = None


def invalid(event: dict[str, Any]) -> list[str]:
    global VALIDATOR
    VALIDATOR = VALIDATOR or _validator()
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in VALIDATOR.iter_errors(event)]


class Receiver:
    """A catalogue's lineage endpoint: keeps every event POSTed to /api/v1/lineage."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: set[str] = set()
        self.log: Path | None = None  # also writes "job EVENTTYPE" lines there
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.paths.add(self.path)
                event = json.loads(body)
                receiver.events.append(event)
                if receiver.log is not None:
                    with receiver.log.open("a") as log:
                        log.write(f"{event['job']['name']} {event['eventType']}\n")
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def _project(tmp_path: Path, entry: dict[str, Any], transport: dict[str, Any],
             monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    genomics_project(root, entry, {"lineage": {"openlineage": {"transport": transport,
                                                               "namespace": "genomics"}}})
    monkeypatch.chdir(root)
    monkeypatch.delenv("LEDGERFLOW_CONFIG", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return root


def _ledger_graph(root: Path, run_id: str) -> list[tuple[str, frozenset[str], frozenset[str]]]:
    """Which task run read and wrote which files, straight from the ledger's tables."""
    from ledgerflow.config import load_settings

    database = Database(load_settings(root / "ledgerflow.yml"), read_only=True)
    try:
        with database.engine().connect() as conn:
            runs = conn.execute(text(
                "SELECT id, task_name, args_hash, value_hash FROM lf_task_run "
                "WHERE run_id = :run AND parent_id IS NOT NULL"), {"run": run_id}).all()
            read = conn.execute(text(
                "SELECT a.args_hash, f.path FROM lf_argument a JOIN lf_file f "
                "ON f.hash = a.value_hash")).all()
            files = dict(conn.execute(text("SELECT hash, path FROM lf_file")).all())
    finally:
        database.dispose()

    def absolute(path: str) -> str:
        return str((root / path).resolve())

    return sorted(
        (r.task_name, frozenset(absolute(p) for a, p in read if a == r.args_hash),
         frozenset({absolute(files[r.value_hash])} if r.value_hash in files else set()))
        for r in runs
    )


def _received_graph(events: list[dict[str, Any]]) -> list[tuple[str, frozenset[str], frozenset[str]]]:
    return sorted(
        (e["job"]["name"], frozenset(d["name"] for d in e["inputs"]),
         frozenset(d["name"] for d in e["outputs"]))
        for e in events
        if e["eventType"] == "COMPLETE" and "parent" in e["run"].get("facets", {})
    )


def _without_client_tags(event: dict[str, Any]) -> dict[str, Any]:
    """openlineage-python's client adds its own ``tags`` run facet to what it sends."""
    copy = json.loads(json.dumps(event))
    copy["run"].get("facets", {}).pop("tags", None)
    return copy


@pytest.mark.parametrize("database_dialect", ["sqlite", "postgresql"])
def test_a_catalogue_receives_the_run_and_rebuilds_its_graph(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, receiver: Receiver,
) -> None:
    root = _project(tmp_path, migrated_database_entry, {"type": "http", "url": receiver.url},
                    monkeypatch)
    done = cli("run", "genomics/pipeline.py:main", "--json")
    assert done.code == 0, done.err
    run_id = json.loads(done.out)["run_id"]
    events = receiver.events
    assert receiver.paths == {"/api/v1/lineage"}
    assert len(events) == 18  # START and COMPLETE of the run and of its 8 task runs
    for event in events:
        assert invalid(event) == [], event

    run_uuid = str(uuid.UUID(hex=run_id))
    by_run: dict[str, list[str]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
    assert all(states == ["START", "COMPLETE"] for states in by_run.values()), by_run
    assert by_run[run_uuid] == ["START", "COMPLETE"]
    children = [e for e in events if e["run"]["runId"] != run_uuid]
    for event in children:
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == run_uuid
        assert (parent["job"]["namespace"], parent["job"]["name"]) == ("genomics", "pipeline.main")
        assert parent["root"]["run"]["runId"] == run_uuid
        if event["eventType"] != "START":
            assert set(event["job"]["facets"]) == {"jobType"}  # the source goes with START
            continue
        assert event["job"]["facets"]["sourceCode"]["sourceCode"].startswith("def ")
        location = event["job"]["facets"]["sourceCodeLocation"]
        assert location["path"] == "genomics/pipeline.py"
        assert location["url"] == (root / "genomics/pipeline.py").as_uri()
    host = socket.gethostname()
    datasets = [d for e in events for d in e["inputs"] + e["outputs"]]
    assert {d["namespace"] for d in datasets} <= {f"file://{host}", "file://" + host.split(".")[0]}
    vcf = next(d for d in datasets if d["name"].endswith("out/sample4.vcf"))
    from ledgerflow.hashing import file_digest

    assert vcf["facets"]["version"]["datasetVersion"] == file_digest(root / "out/sample4.vcf")
    assert vcf["facets"]["ledgerflow_file"]["hashAlgorithm"] == "blake2b-160"

    assert _received_graph(events) == _ledger_graph(root, run_id)
    end = next(e for e in events if e["run"]["runId"] == run_uuid and e["eventType"] == "COMPLETE")
    assert sorted(Path(o["name"]).name for o in end["outputs"]) == [
        f"sample{i}.vcf" for i in range(1, 5)]

    replay = tmp_path / "events.jsonl"
    exported = cli("export", "--openlineage", run_id[:8], "-o", str(replay))
    assert exported.code == 0, exported.err
    assert "Wrote 18 OpenLineage event(s) of 1 run(s)" in exported.out
    replayed = [json.loads(line) for line in replay.read_text().splitlines()]
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731
    assert sorted(map(key, replayed)) == sorted(key(_without_client_tags(e)) for e in events)
    times = [e["eventTime"] for e in replayed]
    assert times == sorted(times)


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_an_endpoint_that_is_down_costs_one_warning_not_the_run(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _project(tmp_path, migrated_database_entry, {"type": "http", "url": f"http://127.0.0.1:{port}"},
             monkeypatch)
    caplog.set_level(logging.WARNING, logger="ledgerflow")
    started = time.monotonic()
    done = cli("run", "genomics/pipeline.py:main", "--json")
    elapsed = time.monotonic() - started
    assert done.code == 0, done.err
    assert json.loads(done.out)["status"] == "done"
    warnings = [r.getMessage() for r in caplog.records if "OpenLineage" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "cannot send the events" in warnings[0] and "export --openlineage" in warnings[0]
    assert "--send" in warnings[0]
    assert elapsed < 30


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_a_failed_task_is_a_fail_event_with_its_error(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli,
) -> None:
    root = _project(tmp_path, migrated_database_entry,
                    {"type": "file", "log_file_path": str(tmp_path / "events.jsonl")}, monkeypatch)
    (root / "broken.py").write_text(
        "from ledgerflow import task\n\n"
        "@task\ndef parse(text: str) -> int:\n    return int(text)\n\n"
        "@task\ndef main() -> list[int]:\n    return [parse('1'), parse('one')]\n")
    done = cli("run", "broken.py:main")
    assert done.code == 1
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    for event in events:
        assert invalid(event) == [], event
    failed = [e for e in events if e["eventType"] == "FAIL"]
    assert [e["job"]["name"] for e in failed] == ["broken.parse", "broken.main"]
    error = failed[0]["run"]["facets"]["errorMessage"]
    assert error["message"].startswith("ValueError: invalid literal for int()")
    assert error["programmingLanguage"] == "python" and "Traceback" in error["stackTrace"]
    assert "1 task run(s) failed" in failed[1]["run"]["facets"]["errorMessage"]["message"]
    assert [e["job"]["name"] for e in events if e["eventType"] == "COMPLETE"] == ["broken.parse"]


def test_the_schema_is_not_a_rubber_stamp() -> None:
    event = {"eventTime": "2026-12-01T00:00:00+00:00", "producer": "urn:x", "schemaURL": "urn:y",
             "eventType": "START", "run": {"runId": str(uuid.uuid4())},
             "job": {"namespace": "n", "name": "j"}}
    assert invalid(event) == []
    assert invalid({**event, "run": {"runId": "run-1"}})
    assert invalid({**event, "eventType": "DONE"})
    assert invalid({**event, "eventTime": "yesterday"})
    facets = {"parent": {"_producer": "urn:x", "_schemaURL": "urn:y", "run": {"runId": "x"}}}
    assert invalid({**event, "run": {"runId": str(uuid.uuid4()), "facets": facets}})
    event.pop("job")
    assert invalid(event)


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_replaying_every_run_and_an_unknown_one(genomics: Any, cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    done = cli("export", "--openlineage", "-o", str(out))
    assert done.code == 0, done.err
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 18 and all(invalid(e) == [] for e in events)
    assert {e["job"]["namespace"] for e in events} == {"ledgerflow"}  # no lineage configured

    out.write_text("kept\n")
    missing = cli("export", "--openlineage", "feedbeef", "-o", str(out))
    assert missing.code != 0 and len(missing.err.strip().splitlines()) == 1
    assert "feedbeef" in missing.err
    assert out.read_text() == "kept\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_a_transport_without_a_type_is_one_line(
    tmp_path: Path, migrated_database_entry: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    from ledgerflow.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _project(tmp_path, migrated_database_entry, {"url": "http://127.0.0.1:9"}, monkeypatch)
    assert "expected a transport with a 'type'" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_runs_from_python_emit_too_and_console_prints_them(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import ledgerflow
    from ledgerflow.config import load_settings

    root = _project(tmp_path, migrated_database_entry, {"type": "console"}, monkeypatch)
    (root / "double.py").write_text(
        "from ledgerflow import task\n\n@task\ndef double(x: int) -> int:\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(root))
    from double import double  # type: ignore[import-not-found]

    capsys.readouterr()
    assert ledgerflow.run(double(21), settings=load_settings(root / "ledgerflow.yml")) == 42
    printed = [json.loads(line) for line in capsys.readouterr().err.splitlines()
               if line.startswith("{")]
    assert [(e["eventType"], e["job"]["name"]) for e in printed] == [
        ("START", "double.double"), ("COMPLETE", "double.double")]
    assert all(invalid(e) == [] for e in printed)


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_without_the_extra_one_line_says_what_to_install(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli,
) -> None:
    _project(tmp_path, migrated_database_entry, {"type": "console"}, monkeypatch)
    for name in ("openlineage", "openlineage.client", "ledgerflow.provenance.openlineage"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of it fails, as uninstalled
    for args in (["run", "genomics/pipeline.py:main"], ["export", "--openlineage"]):
        done = cli(*args)
        assert done.code == 3 and len(done.err.strip().splitlines()) == 1, done.err
        assert "pip install 'ledgerflow[openlineage]'" in done.err
    assert cli("runs", "--json").out.strip() == "[]"  # the run was refused before it began


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_events_arrive_while_the_run_still_runs(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, receiver: Receiver,
) -> None:
    """A later task waits (up to 10 s) until the catalogue has the COMPLETE of an earlier one."""
    root = _project(tmp_path, migrated_database_entry, {"type": "http", "url": receiver.url},
                    monkeypatch)
    seen = tmp_path / "seen.txt"
    (root / "slow.py").write_text(
        "import time\nfrom pathlib import Path\nfrom ledgerflow import task\n\n"
        "@task\ndef first() -> int:\n    return 1\n\n"
        "@task\ndef later(x: int, seen: str) -> bool:\n"
        "    for _ in range(200):\n"
        "        if 'slow.first COMPLETE' in Path(seen).read_text():\n            return True\n"
        "        time.sleep(0.05)\n"
        "    return False\n\n"
        f"@task\ndef main() -> bool:\n    return later(first(), {str(seen)!r})\n")
    seen.write_text("")
    receiver.log = seen
    done = cli("run", "slow.py:main", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["result"] == "True"  # `later` saw `first` complete, live


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_send_replays_into_the_catalogue_and_a_down_one_is_one_line(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, receiver: Receiver,
) -> None:
    root = _project(tmp_path, migrated_database_entry, {"type": "file", "log_file_path": "live.jsonl"},
                    monkeypatch)
    assert cli("run", "genomics/pipeline.py:main").code == 0
    config = root / "ledgerflow.yml"
    config.write_text(config.read_text().replace(
        "type: file\n      log_file_path: live.jsonl", f"type: http\n      url: {receiver.url}"))
    assert receiver.url in config.read_text()
    sent = cli("export", "--openlineage", "--send")
    assert sent.code == 0, sent.err
    assert "Sent 18 OpenLineage event(s) of 1 run(s) to the http transport." in sent.out
    live = [json.loads(line) for line in (root / "live.jsonl").read_text().splitlines()]
    key = lambda e: json.dumps(_without_client_tags(e), sort_keys=True)  # noqa: E731
    assert sorted(map(key, receiver.events)) == sorted(map(key, live))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config.write_text(config.read_text().replace(receiver.url, f"http://127.0.0.1:{port}"))
    down = cli("export", "--openlineage", "--send")
    assert down.code == 4 and len(down.err.strip().splitlines()) == 1, down.err
    assert "the OpenLineage http transport failed after 0 event(s)" in down.err
    assert "Traceback" not in down.err
    assert cli("export", "--openlineage", "--send", "-o", "x.jsonl").code == 2
    assert not (root / "x.jsonl").exists()


def _git(root: Path, *args: str) -> str:
    import subprocess

    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True, timeout=30)
    return done.stdout.strip()


@pytest.mark.parametrize("database_dialect", ["sqlite"])
@pytest.mark.parametrize("with_remote", [False, True])
def test_task_runs_carry_the_git_commit_and_source_location(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, with_remote: bool,
) -> None:
    """The project sits in a subfolder of a git repository with a commit: every task run's
    START names that commit, the repository and the file's path in it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "trunk")
    _git(repo, "config", "user.name", "Lineage Test")
    _git(repo, "config", "user.email", "lineage@example.invalid")
    _git(repo, "config", "commit.gpgsign", "false")
    root = repo / "project"
    genomics_project(root, migrated_database_entry,
                     {"lineage": {"openlineage": {"transport": {
                         "type": "file", "log_file_path": str(tmp_path / "events.jsonl")}}}})
    monkeypatch.chdir(root)
    monkeypatch.delenv("LEDGERFLOW_CONFIG", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    _git(repo, "add", "project/genomics")
    _git(repo, "commit", "-q", "-m", "the pipeline")
    commit = _git(repo, "rev-parse", "HEAD")
    assert len(commit) == 40

    if with_remote:  # a remote with credentials in its URL: the events name only the host
        _git(repo, "remote", "add", "origin", "https://alice:s3cret@git.example.invalid/lab/g.git")
        repo_url = "https://git.example.invalid/lab/g.git"
    else:
        repo_url = repo.resolve().as_uri()
    done = cli("run", "genomics/pipeline.py:main", "--json")
    assert done.code == 0, done.err
    run_id = json.loads(done.out)["run_id"]
    assert "s3cret" not in (tmp_path / "events.jsonl").read_text()
    live = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    replay = tmp_path / "replay.jsonl"
    assert cli("export", "--openlineage", run_id, "-o", str(replay)).code == 0
    assert "s3cret" not in replay.read_text()
    replayed = [json.loads(line) for line in replay.read_text().splitlines()]
    for events in (live, replayed):
        for event in events:
            assert invalid(event) == [], event
        run_uuid = str(uuid.UUID(hex=run_id))
        starts = [e for e in events if e["eventType"] == "START" and e["run"]["runId"] != run_uuid]
        assert sorted(e["job"]["name"] for e in starts) == sorted(
            ["pipeline.align"] * 4 + ["pipeline.call_variants"] * 4)
        for event in starts:
            location = event["job"]["facets"]["sourceCodeLocation"]
            assert location["type"] == "git"
            assert location["version"] == commit
            assert location["path"] == "project/genomics/pipeline.py"  # in the repository
            assert location["repoUrl"] == repo_url
            assert location["branch"] == "trunk"
            assert location["url"] == (root / "genomics/pipeline.py").resolve().as_uri()
        begun = next(e for e in events if e["run"]["runId"] == run_uuid)
        assert begun["run"]["facets"]["ledgerflow_run"]["gitCommit"] == commit


@pytest.mark.parametrize("database_dialect", ["sqlite"])
@pytest.mark.parametrize(("signame", "executor"), [("SIGINT", "local"), ("SIGTERM", "local"),
                                                ("SIGINT", "threads"), ("SIGTERM", "processes")])
def test_an_interrupted_run_ends_in_abort_live_and_replayed(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, signame: str, executor: str,
) -> None:
    """``ledgerflow run`` in its own process is stopped by a signal while a task sleeps: the
    run and its unfinished task run end in ABORT, finished ones in COMPLETE."""
    import os
    import signal
    import subprocess

    events_file = tmp_path / "events.jsonl"
    root = _project(tmp_path, migrated_database_entry,
                    {"type": "file", "log_file_path": str(events_file)}, monkeypatch)
    marker = tmp_path / "sleeping"
    (root / "sleepy.py").write_text(
        "import time\nfrom pathlib import Path\nfrom ledgerflow import task\n\n"
        "@task\ndef first() -> int:\n    return 1\n\n"
        "@task\ndef sleepy(x: int) -> int:\n"
        f"    Path({str(marker)!r}).write_text('yes')\n"
        "    time.sleep(60)\n    return x\n\n"
        "@task\ndef main() -> int:\n    return sleepy(first())\n")
    env = {k: v for k, v in os.environ.items() if k != "LEDGERFLOW_CONFIG"}
    process = subprocess.Popen([sys.executable, "-m", "ledgerflow", "run", "sleepy.py:main",
                                "--executor", executor],
                               cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        process.send_signal(getattr(signal, signame))
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + getattr(signal, signame), err
    live = [json.loads(line) for line in events_file.read_text().splitlines()]
    runs = json.loads(cli("runs", "--json").out)
    assert len(runs) == 1 and runs[0]["status"] == "interrupted"
    run_id = runs[0]["id"]
    replay = tmp_path / "replay.jsonl"
    assert cli("export", "--openlineage", run_id, "-o", str(replay)).code == 0
    replayed = [json.loads(line) for line in replay.read_text().splitlines()]
    run_uuid = str(uuid.UUID(hex=run_id))
    for events in (live, replayed):
        for event in events:
            assert invalid(event) == [], event
        states = [(e["job"]["name"], e["eventType"]) for e in events]
        assert sorted(states) == sorted([
            ("sleepy.main", "START"), ("sleepy.first", "START"), ("sleepy.first", "COMPLETE"),
            ("sleepy.sleepy", "START"), ("sleepy.sleepy", "ABORT"), ("sleepy.main", "ABORT")])
        assert states[-1] == ("sleepy.main", "ABORT")
        ended = next(e for e in events if e["job"]["name"] == "sleepy.sleepy"
                     and e["eventType"] == "ABORT")
        assert ended["run"]["facets"]["ledgerflow_taskRun"]["status"] == "interrupted"
        assert ended["run"]["facets"]["parent"]["run"]["runId"] == run_uuid
    key = lambda e: json.dumps(_without_client_tags(e), sort_keys=True)  # noqa: E731
    assert sorted(map(key, replayed)) == sorted(map(key, live))


def test_the_client_scans_the_environment_only_for_configured_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sending an event does not walk the process environment unless the client was asked
    for environment variables; when it was, they still arrive in the event."""
    import os

    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.transport import Transport

    from ledgerflow.provenance.lineage_live import make_client

    class Recorder(Transport):  # type: ignore[misc]
        kind = "recorder"

        def __init__(self) -> None:
            self.events: list[Any] = []

        def emit(self, event: Any) -> None:
            self.events.append(event)

    class Unwalkable(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            raise AssertionError("the environment was walked")

    def event() -> Any:
        return RunEvent(eventType=RunState.START, eventTime="2026-12-01T00:00:00+00:00",
                        run=Run(runId=str(uuid.uuid4())), job=Job(namespace="n", name="j"),
                        producer="urn:ledgerflow:test")

    monkeypatch.setenv("LF_LINEAGE_PROBE", "seen")
    plain = Recorder()
    client = make_client(plain, {})
    with monkeypatch.context() as guarded:
        guarded.setattr(os, "environ", Unwalkable(os.environ))
        client.emit(event())
    assert "environmentVariables" not in (plain.events[0].run.facets or {})

    asked = Recorder()
    make_client(asked, {"facets": {"environment_variables": ["LF_LINEAGE_PROBE"]}}).emit(event())
    variables = asked.events[0].run.facets["environmentVariables"].environmentVariables
    assert [(v.name, v.value) for v in variables] == [("LF_LINEAGE_PROBE", "seen")]


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_an_unknown_transport_type_refuses_the_run_in_one_line(
    tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, cli: Cli,
) -> None:
    root = _project(tmp_path, migrated_database_entry, {"type": "pigeon"}, monkeypatch)
    config = root / "ledgerflow.yml"
    for kind, why in [("pigeon", "neither a transport name"),
                      ("collections.OrderedDict", "not a Transport class"),
                      ("no_such_package.Carrier", "no_such_package")]:
        config.write_text(config.read_text().replace(
            next(line for line in config.read_text().splitlines() if "type:" in line),
            f"      type: {kind}"))
        done = cli("run", "genomics/pipeline.py:main")
        assert done.code == 3 and len(done.err.strip().splitlines()) == 1, done.err
        assert f"transport type {kind!r}" in done.err and why in done.err, done.err
        assert "console, datadog, file" in done.err
    assert cli("runs", "--json").out.strip() == "[]"  # refused before any run began

    events = tmp_path / "events.jsonl"
    config.write_text(config.read_text().replace(
        "type: no_such_package.Carrier", "type: openlineage.client.transport.file.FileTransport\n"
        f"      log_file_path: {events}\n      append: true"))
    done = cli("run", "genomics/pipeline.py:main", "--json")
    assert done.code == 0 and done.err == "", done.err
    assert len(events.read_text().splitlines()) == 18  # a Transport class's path is a type
