"""``dataflow`` and ``log`` as graph pictures: Graphviz DOT and Mermaid flowcharts."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import ledgerflow
from ledgerflow import File, api, task
from ledgerflow.cli.main import cli
from ledgerflow.config.settings import Settings
from ledgerflow.errors import UsageError
from ledgerflow.provenance.ledger import Ledger
from ledgerflow.provenance.pictures import Edge, Picture, render, to_dot, to_mermaid
from ledgerflow.testing.plugin import ci_enabled
from ledgerflow.testing.workload import ExampleLedger, write_example_ledger

NASTY = 'a "quoted" [bracket] {brace} <tag> #hash `tick` |pipe| \\back\nnew line; -->'


@pytest.fixture
def example(ledger_settings: Settings) -> ExampleLedger:
    return write_example_ledger(ledger_settings)


@pytest.fixture
def book(ledger_settings: Settings, example: ExampleLedger) -> Iterator[Ledger]:
    with Ledger.open(ledger_settings) as ledger:
        yield ledger


def dot_accepts(source: str) -> None:
    """Graphviz parses ``source`` (``dot -Tsvg``); skipped without Graphviz outside CI."""
    if shutil.which("dot") is None:
        if ci_enabled():
            pytest.fail("Graphviz's dot is not installed (apt-get install graphviz)")
        pytest.skip("Graphviz's dot is not installed")
    done = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and "<svg" in done.stdout, done.stderr
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr


_MERMAID_NODE = re.compile(r'^  (n\d+)(\[\["|\[/"|\["|\(")([^"<>`]*)("\]\]|"/\]|"\]|"\))$')
_MERMAID_EDGE = re.compile(r'^  (n\d+) -->(?:\|"([^"<>`]*)"\|)? (n\d+)$')
_CLOSING = {'[["': '"]]', '[/"': '"/]', '["': '"]', '("': '")'}


def mermaid_nodes(source: str) -> dict[str, str]:
    """Check ``source`` against the flowchart grammar the pictures use (a header, node
    statements with quoted labels, ``-->`` edges between declared nodes); returns the labels
    with Mermaid's ``#code;`` entities decoded."""
    lines = source.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    for line in lines[1:]:
        node = _MERMAID_NODE.match(line)
        if node:
            assert _CLOSING[node.group(2)] == node.group(4), line
            assert node.group(1) not in nodes
            nodes[node.group(1)] = decode(node.group(3))
            continue
        edge = _MERMAID_EDGE.match(line)
        assert edge, f"not a flowchart statement: {line!r}"
        assert edge.group(1) in nodes and edge.group(3) in nodes, line
    return nodes


def decode(label: str) -> str:
    assert not re.search(r"#(?!(quot|lt|gt|35|96);)", label), label  # every # starts an entity
    for code, ch in (("#quot;", '"'), ("#lt;", "<"), ("#gt;", ">"), ("#96;", "`"), ("#35;", "#")):
        label = label.replace(code, ch)
    return label


def test_labels_with_quotes_brackets_and_newlines_cannot_break_either_format() -> None:
    picture = Picture(NASTY)
    a = picture.node("a", NASTY, "call")
    b = picture.node("b", "File(path=out/x [1].txt)", "value")
    c = picture.node("c", "", "origin")
    assert picture.node("a", "ignored", "call") == a  # one node per key
    picture.edges += [Edge(a, b, NASTY), Edge(c, a)]
    dot_accepts(to_dot(picture))
    nodes = mermaid_nodes(to_mermaid(picture))
    assert nodes[a] == " ".join(NASTY.split()) and nodes[b] == "File(path=out/x [1].txt)"
    assert '\\"quoted\\"' in to_dot(picture) and "\\n" in to_dot(picture)
    with pytest.raises(ValueError, match="unknown picture format 'svg'"):
        render(picture, "svg")


def test_dataflow_as_dot_and_mermaid(book: Ledger, example: ExampleLedger) -> None:
    flow = book.dataflow("out/s2.vcf")
    dot = api.picture(flow, "dot")
    dot_accepts(dot)
    assert dot.startswith('digraph "upstream dataflow of ') and "rankdir=LR" in dot
    labels = mermaid_nodes(api.picture(flow, "mermaid"))
    c, v = example.calls, example.values
    for name in ("call_variants", "align"):
        assert any(label.endswith(f"> {name}") for label in labels.values()), name
    assert f"value = <{v['vcf2'][:8]}> File(path=out/s2.vcf)" in labels.values()
    assert f"<{c['call2'][:8]}> call_variants" in labels.values()
    # every edge of the dataflow is drawn: argument (value -> call, with its parameter),
    # result (call -> value)
    mermaid = api.picture(flow, "mermaid")
    assert mermaid.count(" --> ") + mermaid.count(' -->|"') == len(flow.edges)
    # an argument routed through parent calls names them, as the text's routing lines do
    assert '-->|"bam via align_all, call_all"|' in mermaid
    assert '-->|"fastq via main, align_all"|' in mermaid and '-->|"ref"|' in mermaid
    with pytest.raises(UsageError, match="unknown picture format 'png'"):
        api.picture(flow, "png")


def test_log_as_dot_and_mermaid(book: Ledger, example: ExampleLedger) -> None:
    found = book.log(example.runs["old"])
    assert found is not None
    dot_accepts(api.picture(found, "dot"))
    labels = list(mermaid_nodes(api.picture(found, "mermaid")).values())
    assert labels[0].startswith(f"run {example.runs['old'][:8]} ")
    assert labels.count("pipeline.align [done]") == 2
    assert labels.count("pipeline.call_variants [done]") == 2
    assert len(labels) == 1 + found.shown


def test_a_grouped_log_draws_one_node_per_group(ledger_settings: Settings) -> None:
    ledgerflow.run(fan_out(40), settings=ledger_settings)
    with Ledger.open(ledger_settings) as book:
        found = book.log(None)
    assert found is not None
    labels = list(mermaid_nodes(api.picture(found, "mermaid")).values())
    assert labels[2].endswith(".square × 40 (40 done)") and len(labels) == 3
    dot_accepts(api.picture(found, "dot"))


@task
def square(x: int) -> int:
    return x * x


@task
def fan_out(n: int) -> list[int]:
    return [square(i) for i in range(n)]


@task(name='odd "name" [x]')
def odd(source: File) -> File:
    return File(source.path.replace(".txt", ".out")).write(source.read().upper())


def test_cli_format_option_for_dataflow_and_log(
    ledger_settings: Settings, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project_dir)
    Path('we"ird [1].txt').write_text("text")
    ledgerflow.run(odd(File('we"ird [1].txt')), settings=ledger_settings)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(ledger_settings.path), *args])
        assert result.exit_code == 0, result.output
        return result.output

    for command in (["dataflow", 'we"ird [1].out'], ["log"]):
        dot = invoke(*command, "--format", "dot")
        dot_accepts(dot)
        labels = mermaid_nodes(invoke(*command, "--format", "mermaid"))
        assert any('odd "name" [x]' in label for label in labels.values())
        assert invoke(*command) == invoke(*command, "--format", "text")
        assert invoke(*command, "--json").lstrip().startswith("{")
        both = runner.invoke(cli, ["--config", str(ledger_settings.path), *command,
                                   "--json", "--format", "dot"])
        assert both.exit_code == 2 and "pass one of them" in both.output
        bad = runner.invoke(cli, ["--config", str(ledger_settings.path), *command,
                                  "--format", "svg"])
        assert bad.exit_code == 2 and "'svg' is not one of" in bad.output
    assert 'we\\"ird [1].out' in invoke("dataflow", 'we"ird [1].out', "--format", "dot")
