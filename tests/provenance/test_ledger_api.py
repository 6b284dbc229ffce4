"""The Ledger API on a ledger of known shape (``write_example_ledger``), on both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.errors import AmbiguousIdError, NotFoundError, SchemaOutdatedError, UsageError
from ledgerflow.ledger.schema import Run
from ledgerflow.provenance.ledger import Ledger
from ledgerflow.provenance.query import parse_time
from ledgerflow.provenance.records import CallInfo, FileInfo, RunInfo, TaskRunInfo, ValueInfo
from ledgerflow.testing.workload import ExampleLedger, LedgerWriter, write_example_ledger


@pytest.fixture
def example(ledger_settings: Settings, fresh_models: None) -> ExampleLedger:
    """The example ledger; ``fresh_models`` closes the schema checks' connections after."""
    return write_example_ledger(ledger_settings)


@pytest.fixture
def book(ledger_settings: Settings, example: ExampleLedger) -> Iterator[Ledger]:
    with Ledger.open(ledger_settings) as ledger:
        yield ledger


# -- runs ---------------------------------------------------------------------------------


def test_runs_newest_first_with_counts_by_state(book: Ledger, example: ExampleLedger) -> None:
    runs = book.runs()
    assert [r.id for r in runs] == [example.runs[k] for k in ("running", "failed", "cached", "old", "merge")]
    by_id = {r.id: r for r in runs}
    assert by_id[example.runs["old"]].counts == {"done": 7}
    assert by_id[example.runs["cached"]].counts == {"cached": 7}
    assert by_id[example.runs["failed"]].counts == {"done": 1, "failed": 2, "skipped": 1}
    assert by_id[example.runs["running"]].counts == {"pending": 1, "running": 1}
    assert by_id[example.runs["old"]].duration == pytest.approx(12.5)
    assert by_id[example.runs["running"]].duration is None
    assert [str(t) for t in by_id[example.runs["old"]].tags] == ["env=prod"]
    assert all(isinstance(r, RunInfo) and r.started_at.tzinfo is not None for r in runs)  # type: ignore[union-attr]


def test_runs_filters(book: Ledger, example: ExampleLedger) -> None:
    ids = example.runs
    assert [r.id for r in book.runs(status="failed")] == [ids["failed"]]
    assert {r.id for r in book.runs(status="failed,running")} == {ids["failed"], ids["running"]}
    assert [r.id for r in book.runs(tag="env=prod")] == [ids["old"]]
    assert {r.id for r in book.runs(tag="env")} == {ids["old"], ids["failed"]}
    assert [r.id for r in book.runs(task="merge")] == [ids["merge"]]
    # a task run of `call_variants` happened in three runs; `pipeline.align` by full name too
    assert {r.id for r in book.runs(task="call_variants")} == {ids["old"], ids["cached"], ids["failed"]}
    assert {r.id for r in book.runs(task="pipeline.align")} == {ids["old"], ids["cached"], ids["failed"], ids["running"]}
    assert [r.id for r in book.runs(since="3h")] == [ids["running"], ids["failed"]]
    assert [r.id for r in book.runs(since="2d", until="1h")] == [ids["failed"], ids["cached"]]
    assert [r.id for r in book.runs(limit=2, offset=1)] == [ids["failed"], ids["cached"]]
    assert book.runs(status="done", since="1h") == []


def test_run_by_prefix_and_latest(book: Ledger, example: ExampleLedger) -> None:
    assert book.run("bbbb").id == example.runs["failed"]
    assert book.run(example.runs["old"].upper()).id == example.runs["old"]
    latest = book.latest_run()
    assert latest is not None and latest.id == example.runs["running"]
    with pytest.raises(AmbiguousIdError) as err:
        book.run("aaa")
    assert "aaaa00010000" in str(err.value) and "aaab00020000" in str(err.value)
    with pytest.raises(NotFoundError, match="no run matches 'eeee'"):
        book.run("eeee")


# -- one record -----------------------------------------------------------------------


def test_get_each_kind(book: Ledger, example: ExampleLedger) -> None:
    run = book.show("dddd")
    assert isinstance(run, RunInfo) and run.entry_task == "pipeline.merge"

    failed = book.show(example.task_runs["failed.call3"][:10])
    assert isinstance(failed, TaskRunInfo)
    assert failed.status == "failed" and failed.exception_type == "ValueError"
    assert "quality filter" in (failed.traceback or "")
    assert [(a.name, a.value.path) for a in failed.arguments] == [("bam", "out/s3.bam"), ("ref", "data/ref.fa")]
    assert [line.message for line in failed.logs or ()] == ["reading out/s3.bam", "no reads pass the quality filter"]
    assert failed.logs and failed.logs[1].level == "ERROR"

    call = book.show(example.calls["align_all"])
    assert isinstance(call, CallInfo) and call.task_name == "align_all"
    assert call.parents == (example.calls["main"],)
    assert set(call.children or ()) == {example.calls["align1"], example.calls["align2"]}
    assert {tr.run_id for tr in call.task_runs or ()} == {example.runs["old"], example.runs["cached"]}
    assert call.result is not None and call.result.hash == example.values["bams"]

    value = book.show(example.values["m0"])
    assert isinstance(value, ValueInfo) and value.preview == "'shared'"
    assert value.produced_by == (example.calls["task0"],)
    assert set(value.used_by or ()) == {example.calls["task1"], example.calls["task2"]}


def test_get_file_by_hash_or_path(book: Ledger, example: ExampleLedger, ledger_settings: Settings) -> None:
    by_path = book.show("out/s1.vcf")
    assert isinstance(by_path, FileInfo) and by_path.hash == example.values["vcf1"]
    assert [tr.task_name for tr in by_path.task_runs or ()] == ["pipeline.call_variants"] * 2
    by_hash = book.show(example.values["vcf1"][:12])
    assert isinstance(by_hash, FileInfo) and by_hash.path == "out/s1.vcf"
    assert by_hash.value is not None and by_hash.value.type_name == "File"
    with pytest.raises(NotFoundError, match="out/none.vcf"):
        book.show("out/none.vcf")


def test_ambiguous_prefix_lists_candidates_of_every_kind(ledger_settings: Settings) -> None:
    writer = LedgerWriter()
    task = writer.task("t", ())
    run = writer.run("t", fixed_id="abcd" + "1" * 28)
    writer.task_run(run, task, None, status="pending", args_hash=writer.arguments([]), fixed_id="abcd" + "2" * 28)
    writer.write(ledger_settings)
    with Ledger.open(ledger_settings) as ledger, pytest.raises(AmbiguousIdError) as err:
        ledger.show("abcd")
    message = str(err.value)
    assert "run abcd11111111" in message and "task_run abcd22222222" in message
    assert err.value.exit_code == 2
    with Ledger.open(ledger_settings) as ledger:
        assert {(c.record_kind, c.id[:5]) for c in ledger.matches("abcd")} == {("run", "abcd1"), ("task_run", "abcd2")}
        assert [c.record_kind for c in ledger.matches("abcd1")] == ["run"]
        assert ledger.matches("not/hex") == []


def test_logs_of_run_and_task_run(book: Ledger, example: ExampleLedger) -> None:
    run_lines = book.logs(example.runs["failed"])
    assert [line.message for line in run_lines] == ["reading out/s3.bam", "no reads pass the quality filter"]
    assert [line.message for line in book.logs(example.task_runs["old.align1"])] == ["aligned 120 reads"]
    with pytest.raises(NotFoundError):
        book.logs(example.calls["main"])  # a call is neither a run nor a task run


def test_log_follows_parent_ids(book: Ledger, example: ExampleLedger) -> None:
    found = book.log(example.runs["old"])
    assert found is not None and found.total == found.shown == 7 and not found.truncated
    walked = [(depth, entry.task_run.task_name) for depth, entry in found.entries()]  # type: ignore[union-attr]
    assert walked[0] == (0, "pipeline.main")
    assert sorted(walked[1:]) == sorted([
        (1, "pipeline.align_all"), (2, "pipeline.align"), (2, "pipeline.align"),
        (1, "pipeline.call_all"), (2, "pipeline.call_variants"), (2, "pipeline.call_variants"),
    ])
    cut = book.log(example.runs["old"], depth=2)
    assert cut is not None and cut.shown == 3
    assert [entry.hidden for _, entry in cut.entries()] == [0, 2, 2]  # type: ignore[union-attr]
    assert book.log(example.runs["old"], limit=2).truncated  # type: ignore[union-attr]


def test_old_names_still_work_with_a_warning(book: Ledger, example: ExampleLedger) -> None:
    with pytest.warns(DeprecationWarning, match="Ledger.show"):
        assert book.get(example.runs["old"]).kind == "run"
    with pytest.warns(DeprecationWarning, match="Ledger.query"):
        assert len(book.task_runs(run=example.runs["old"])) == 7
    with pytest.warns(DeprecationWarning, match="Ledger.log"):
        forest = book.tree(example.runs["old"])
    assert len(forest) == 1
    walked = [(depth, tr.task_name) for depth, tr in forest[0].walk()]
    assert walked[0] == (0, "pipeline.main")
    assert sorted(walked[1:]) == sorted([
        (1, "pipeline.align_all"), (2, "pipeline.align"), (2, "pipeline.align"),
        (1, "pipeline.call_all"), (2, "pipeline.call_variants"), (2, "pipeline.call_variants"),
    ])
    assert forest[0].to_json()["children"][0]["children"][0]["status"] == "done"


# -- task runs, values, files ------------------------------------------------------------


def test_task_run_filters(book: Ledger, example: ExampleLedger) -> None:
    failed = book.query(status="failed")
    assert [tr.id for tr in failed] == [example.task_runs["failed.call3"], example.task_runs["failed.main"]]
    assert {tr.id for tr in book.query(task="align", run="aaaa0001")} == {
        example.task_runs["old.align1"], example.task_runs["old.align2"]}
    assert len(book.query(task="pipeline.task*")) == 4
    assert {tr.run_id for tr in book.query(tag="env=dev")} == {example.runs["failed"]}
    # started in the last 3 hours: 3 of the failed run, 1 of the running one (pending and
    # skipped task runs never started)
    assert len(book.query(since="3h")) == 4
    assert [tr.status for tr in book.query(run="cccc", status="pending")] == ["pending"]
    assert book.query(status="failed", since="1h") == []


def test_task_runs_by_file_glob(book: Ledger, example: ExampleLedger) -> None:
    made_vcf = book.query(file="out/s2.vcf")  # returned it, alone or inside a list
    assert {tr.task_name for tr in made_vcf} == {"pipeline.call_variants", "pipeline.call_all", "pipeline.main"}
    assert {tr.run_id for tr in made_vcf} == {example.runs["old"], example.runs["cached"]}
    used = book.query(file="data/s1.*", run="aaaa0001")  # took it, alone or inside a list
    assert {tr.task_name for tr in used} == {"pipeline.align", "pipeline.align_all", "pipeline.main"}
    assert {tr.task_name for tr in book.query(file="*.bam", status="failed")} == {"pipeline.call_variants"}


def test_tag_and_untag(book: Ledger, example: ExampleLedger) -> None:
    tags = book.tag("out/s2.vcf", qc="pass", reviewer="ana")
    assert sorted(str(t) for t in tags) == ["qc=pass", "reviewer=ana"]
    assert {t.entity_kind for t in tags} == {"file"}
    # tagging twice is harmless; a task run is found through the tag on its result
    book.tag(example.values["vcf2"], {"qc": "pass"})
    assert {tr.task_name for tr in book.query(tag="qc=pass")} == {"pipeline.call_variants"}
    book.tag("cccc", env="staging")
    assert [r.id for r in book.runs(tag="env=staging")] == [example.runs["running"]]
    assert book.untag("out/s2.vcf", "reviewer") == 1
    assert [str(t) for t in book.tags(example.values["vcf2"])] == ["qc=pass"]
    assert book.untag("cccc", env="staging") == 1
    assert book.runs(tag="env=staging") == []
    with pytest.raises(UsageError):
        book.tag("cccc")
    with pytest.raises(NotFoundError):
        book.tag("ffff9999", a="b")


def test_values_and_files(book: Ledger, example: ExampleLedger) -> None:
    lists = book.values(type="list")
    assert {v.hash for v in lists} == {example.values[k] for k in ("fastqs", "bams", "vcfs")}
    made_by_task1 = book.values(task="task1")
    assert [v.preview for v in made_by_task1] == ["'left'"]
    assert {v.hash for v in book.values(run="dddd")} == {example.values[k] for k in ("m0", "m1", "m2", "m3")}
    files = book.files("out/*.vcf")
    assert {f.path for f in files} == {"out/s1.vcf", "out/s2.vcf", "out/s3.vcf"}
    # a relative glob matches the end of a path, from a "/" on
    assert {f.path for f in book.files("s1.*")} == {"data/s1.fastq", "out/s1.bam", "out/s1.vcf"}
    assert {f.path for f in book.files("1.*")} == set()
    assert {f.path for f in book.files(run="bbbb")} == {"data/s3.fastq", "data/ref.fa", "out/s3.bam", "out/s3.vcf"}


# -- inputs and opening ------------------------------------------------------------------


def test_parse_time_forms() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_time("2d", now=now) == now - timedelta(days=2)
    assert parse_time("1h30m", now=now) == now - timedelta(hours=1, minutes=30)
    assert parse_time("2026-11-01T08:30+00:00") == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert parse_time(now) == now
    for bad in ("yesterday-ish", "", "2d x", "31/12/2026"):
        with pytest.raises(UsageError, match="--since"):
            parse_time(bad)


def test_bad_filters_are_usage_errors(book: Ledger) -> None:
    with pytest.raises(UsageError, match="unknown status 'finished'"):
        book.runs(status="finished")
    with pytest.raises(UsageError, match="--until"):
        book.query(until="soon")
    with pytest.raises(UsageError, match="--limit"):
        book.runs(limit=-1)


def test_open_marks_dead_runs_interrupted(ledger_settings: Settings, example: ExampleLedger) -> None:
    with Database(ledger_settings) as db, db.transaction() as session:
        session.get_one(Run, example.runs["running"]).heartbeat_at = datetime.now(UTC) - timedelta(hours=1)
    with Ledger.open(ledger_settings) as ledger:
        assert ledger.reaped == [example.runs["running"]]
        run = ledger.run("cccc")
        assert run.status == "interrupted" and run.counts == {"interrupted": 2}


def test_open_refuses_an_unmigrated_ledger(project_dir: object) -> None:
    from ledgerflow.config import load_settings

    with pytest.raises(SchemaOutdatedError, match="ledgerflow db upgrade"):
        Ledger.open(load_settings(f"{project_dir}/ledgerflow.yml"))
