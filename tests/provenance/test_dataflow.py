"""Dataflow upstream and downstream, on known graphs and on a real pipeline, both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import ledgerflow
from ledgerflow import File, task
from ledgerflow.config.settings import Settings
from ledgerflow.errors import NotFoundError
from ledgerflow.provenance.ledger import Ledger
from ledgerflow.testing.workload import (
    ExampleLedger,
    LedgerWriter,
    generate_workload,
    write_example_ledger,
)


@pytest.fixture
def example(ledger_settings: Settings) -> ExampleLedger:
    return write_example_ledger(ledger_settings)


@pytest.fixture
def book(ledger_settings: Settings, example: ExampleLedger) -> Iterator[Ledger]:
    with Ledger.open(ledger_settings) as ledger:
        yield ledger


def short(hash_: str) -> str:
    return f"<{hash_[:8]}>"


def test_upstream_text_routes_through_parents_down_to_origins(book: Ledger, example: ExampleLedger) -> None:
    v, c = example.values, example.calls
    flow = book.dataflow("out/s2.vcf")
    assert flow.text() == "\n".join([
        f"value = {short(v['vcf2'])} File(path=out/s2.vcf)",
        "",
        f"value <-- {short(c['call2'])} call_variants(bam, ref)",
        f"  bam = {short(v['bam2'])} File(path=out/s2.bam)",
        f"  ref = {short(v['ref'])} File(path=data/ref.fa)",
        "",
        f"bam <-- argument of {short(c['call_all'])} call_all(bams, ref)",
        f"    <-- {short(c['align_all'])} align_all(fastqs, ref)",
        f"    <-- {short(c['align2'])} align(fastq, ref)",
        f"  fastq = {short(v['fq2'])} File(path=data/s2.fastq)",
        f"  ref   = {short(v['ref'])} File(path=data/ref.fa)",
        "",
        f"ref <-- argument of {short(c['call_all'])} call_all(bams, ref)",
        f"    <-- argument of {short(c['main'])} main(fastqs, ref)",
        "    <-- origin",
        "",
        f"fastq <-- argument of {short(c['align_all'])} align_all(fastqs, ref)",
        f"      <-- argument of {short(c['main'])} main(fastqs, ref)",
        "      <-- origin",
    ])


def test_upstream_json_is_a_dag_of_values_calls_and_edges(book: Ledger, example: ExampleLedger) -> None:
    v, c = example.values, example.calls
    data = book.dataflow(v["vcf2"][:10]).to_json()
    assert data["direction"] == "upstream" and data["root"] == v["vcf2"] and not data["truncated"]
    values = {item["name"]: item for item in data["values"]}
    assert {name: item["hash"] for name, item in values.items()} == {
        "value": v["vcf2"], "bam": v["bam2"], "ref": v["ref"], "fastq": v["fq2"]}
    assert values["ref"]["origin"] and values["ref"]["path"] == "data/ref.fa"
    assert not values["bam"]["origin"]
    assert {call["hash"] for call in data["calls"]} == {c[k] for k in ("call2", "align2", "call_all", "align_all", "main")}
    edges = {(e["source"], e["target"], e["kind"]): e for e in data["edges"]}
    assert (c["call2"], v["vcf2"], "result") in edges
    into_call = edges[(v["bam2"], c["call2"], "argument")]
    assert into_call["param"] == "bam" and into_call["via"] == [c["align_all"], c["call_all"]]
    # the shared reference feeds both tasks: one value, two argument edges
    assert {e["target"] for e in data["edges"] if e["source"] == v["ref"]} == {c["call2"], c["align2"]}
    assert set(data) == {"direction", "root", "truncated", "values", "calls", "edges", "text"}


def test_a_value_used_by_two_branches_is_shown_once(book: Ledger, example: ExampleLedger) -> None:
    v, c = example.values, example.calls
    flow = book.dataflow("dddd")  # a run: its result
    assert flow.root == v["m3"]
    text = flow.text()
    assert text.count("<-- ") == 4  # value, c, d and the shared a: one section each
    assert f"a <-- {short(c['task0'])} task0()" in flow.lines
    assert text.count(f"a = {short(v['m0'])} 'shared'") == 2
    assert f"d <-- {short(c['task2'])} task2(b=a)" in flow.lines
    assert [value.name for value in flow.values].count("a") == 1


def test_downstream_follows_arguments_and_containers(book: Ledger, example: ExampleLedger) -> None:
    v, c = example.values, example.calls
    flow = book.dataflow("data/s2.fastq", downstream=True)
    called = {call.hash for call in flow.calls}
    assert {c["align2"], c["call2"], c["align_all"], c["main"], c["call_all"]} <= called
    assert c["align1"] not in called and c["call1"] not in called
    edges = {(e.source, e.target): e for e in flow.edges if e.kind == "argument"}
    assert edges[(v["fq2"], c["align2"])].param == "fastq" and edges[(v["fq2"], c["align2"])].inside is None
    assert edges[(v["fq2"], c["align_all"])].inside == v["fastqs"]
    assert edges[(v["bam2"], c["call2"])].param == "bam"
    assert f"  --> {short(c['align2'])} align(fastq=value, ref) --> bam" in flow.lines
    assert f"  --> {short(c['call2'])} call_variants(bam, ref) --> call_variants_result" in flow.lines
    assert flow.to_json()["direction"] == "downstream"


def test_values_built_from_parts_are_traced_part_by_part(ledger_settings: Settings) -> None:
    writer = LedgerWriter()
    main, step, summarize = writer.task("main", ("n",)), writer.task("step", ("i",)), writer.task("summarize", ("items",))
    outs = [writer.value(f"out{i}") for i in range(200)]
    total = writer.value("total")
    root = writer.call(main, [writer.value(200)], total)
    steps = [writer.call(step, [writer.value(i)], outs[i], parent=root) for i in range(200)]
    writer.call(summarize, [writer.container(outs)], total, parent=root)
    writer.write(ledger_settings)
    with Ledger.open(ledger_settings) as ledger:
        flow = ledger.dataflow(total)
    assert f"items <-- [items_0, items_1, items_2, ...] built in {short(root)} main" in flow.lines
    assert any(line.startswith(f"items_7 <-- {short(steps[7])} step(") for line in flow.lines)
    assert len([v for v in flow.values if v.name.startswith("items_")]) == 200
    # one query per kind and level, whatever the width
    assert flow.queries < 25


def test_deep_chain_is_walked_level_by_level(ledger_settings: Settings) -> None:
    work = generate_workload(ledger_settings, calls=300, depth=20)
    with Ledger.open(ledger_settings) as ledger:
        flow = ledger.dataflow(work.deep_value)
        assert ledger.dataflow(work.chain_run).root == work.deep_value
    steps = [line for line in flow.lines if " step(" in line and "<-- " in line]
    assert len(steps) == 20
    assert flow.value("value").preview == "'chain-20-of-20'"
    assert "'chain-start'" in {v.preview for v in flow.values}
    assert flow.queries < 4 * 20


def test_dataflow_of_unknown_or_resultless_records(book: Ledger, example: ExampleLedger) -> None:
    with pytest.raises(NotFoundError, match="no record matches 'out/missing.vcf'"):
        book.dataflow("out/missing.vcf")
    with pytest.raises(NotFoundError, match="has no result value"):
        book.dataflow(example.task_runs["failed.call3"])


def test_max_nodes_truncates(book: Ledger, example: ExampleLedger) -> None:
    flow = book.dataflow("out/s2.vcf", max_nodes=2)
    assert flow.truncated and flow.lines[-1].startswith("... stopped after 2 values")
    down = book.dataflow("data/ref.fa", downstream=True, max_nodes=1)
    assert down.truncated and len(down.calls) == 1


# -- a real pipeline ---------------------------------------------------------------------


@task
def align_reads(fastq: File, ref: File) -> File:
    bam = File(Path("out") / (Path(fastq.path).stem + ".bam"))
    bam.write(f"align({fastq.read()}, {ref.read()})")
    return bam


@task
def call_variants(bam: File, ref: File) -> File:
    vcf = File(Path(bam.path).with_suffix(".vcf"))
    vcf.write(f"calls({bam.read()}, {ref.read()})")
    return vcf


@task
def variants_main(samples: list[str], ref_path: str) -> list[File]:
    ref = File(ref_path)
    return [call_variants(align_reads(File(f"data/{s}.fastq"), ref), ref) for s in samples]


def test_dataflow_of_a_file_written_by_a_real_run(
    ledger_settings: Settings, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project_dir)
    (project_dir / "data").mkdir()
    (project_dir / "out").mkdir()
    for name in ("sample1", "sample4"):
        (project_dir / "data" / f"{name}.fastq").write_text(f"reads of {name}")
    (project_dir / "data" / "ref.fa").write_text("ACGT")
    ledgerflow.run(variants_main(["sample1", "sample4"], "data/ref.fa"), settings=ledger_settings)

    with Ledger.open(ledger_settings) as ledger:
        flow = ledger.dataflow("out/sample4.vcf")
        absolute = ledger.dataflow(str(project_dir / "out" / "sample4.vcf"))
        down = ledger.dataflow("data/sample4.fastq", downstream=True)
    text = flow.text()
    assert absolute.root == flow.root
    assert flow.lines[0].startswith("value = <") and "sample4.vcf" in flow.lines[0]
    assert flow.lines[2].startswith("value <-- <") and "call_variants(bam, ref)" in flow.lines[2]
    assert "bam <-- <" in text and "align_reads(fastq, ref)" in text
    fastq = flow.value("fastq")
    assert fastq.path is not None and fastq.path.endswith("data/sample4.fastq") and fastq.origin
    assert "sample1" not in text  # the other branch is not part of this derivation
    assert [v.name for v in flow.values].count("ref") == 1
    assert {c.task_name for c in down.calls} >= {"align_reads", "call_variants"}
    assert any("sample4.vcf" in (v.path or "") for v in down.values)


# -- per-element work of a fan-out ---------------------------------------------------------


@task
def parse_records(n: int) -> list[str]:
    return [f"record {i}" for i in range(n)]


@task
def summarize(record: str) -> str:
    return record.upper()


@task
def fan(parsed: list[str]) -> list[str]:
    return [summarize(p) for p in parsed]


@task
def write_report(summaries: list[str]) -> File:
    return File("out/report.txt").write("\n".join(summaries))


@task
def report_main(n: int) -> File:
    return write_report(fan(parse_records(n)))


@pytest.mark.parametrize("n", [3, 40])
def test_dataflow_shows_the_calls_that_computed_each_element_of_a_fan_out(
    ledger_settings: Settings, project_dir: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    monkeypatch.chdir(project_dir)
    ledgerflow.run(report_main(n), settings=ledger_settings)
    with Ledger.open(ledger_settings) as ledger:
        flow = ledger.dataflow("out/report.txt")
    text = flow.text()
    assert "summaries <-- <" in text and "fan(parsed)" in text
    work = [c for c in flow.calls if c.task_name.endswith("summarize")]
    assert len(work) == n  # every element's call is a node of the graph
    summaries = flow.value("summaries").hash
    elements = {e.source: e.param for e in flow.edges if e.kind == "element" and e.target == summaries}
    assert sorted(elements.values(), key=int) == [str(i) for i in range(n)]
    made = {e.source: e.target for e in flow.edges if e.kind == "result"}
    assert {made[c.hash] for c in work} == set(elements)
    if n <= 5:  # few: one line per element, under the section of the list
        for i, call in enumerate(work):
            assert f"  summaries[{i}] <-- <{call.hash[:8]}> {call.task_name}(record)" in flow.lines
        assert flow.value("summaries_1").preview == "'RECORD 1'"
    else:  # many: grouped by task
        [line] = [line for line in flow.lines if line.startswith("  summaries[")]
        assert line.startswith(f"  summaries[0..{n - 1}] <-- {work[0].task_name} × {n} (<")
    assert not flow.truncated
    capped = Ledger.open(ledger_settings)
    with capped as ledger:
        small = ledger.dataflow("out/report.txt", max_nodes=2)
    assert small.truncated
