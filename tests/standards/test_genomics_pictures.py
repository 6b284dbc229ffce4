"""The graph pictures of the genomics example: ``ledgerflow log RUN --format dot|mermaid`` and
``ledgerflow dataflow PATH --format dot|mermaid``, the DOT read by Graphviz itself."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from ledgerflow.testing.plugin import ci_enabled

from .conftest import Cli, Genomics


def graphviz_reads(source: str) -> str:
    """The SVG Graphviz draws from ``source`` (which it must read without a complaint)."""
    if shutil.which("dot") is None:
        if ci_enabled():
            pytest.fail("Graphviz's dot is not installed (apt-get install graphviz)")
        pytest.skip("Graphviz's dot is not installed")
    done = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and "<svg" in done.stdout, done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout


def mermaid_graph(source: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The node labels (entities decoded) and edges of a Mermaid flowchart."""
    lines = source.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for line in lines[1:]:
        node = re.fullmatch(r'  (n\d+)(?:\[\[|\[/|\[|\()"([^"]*)"(?:\]\]|/\]|\]|\))', line)
        edge = re.fullmatch(r'  (n\d+) -->(?:\|"[^"]*"\|)? (n\d+)', line)
        assert node or edge, line
        if node:
            nodes[node[1]] = node[2].replace("#lt;", "<").replace("#gt;", ">")
        else:
            assert edge is not None and edge[1] in nodes and edge[2] in nodes, line
            edges.append((edge[1], edge[2]))
    return nodes, edges


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_the_run_as_dot_and_mermaid(genomics: Genomics, cli: Cli) -> None:
    dot = cli("log", genomics.run_id, "--format", "dot")
    assert dot.code == 0, dot.err
    svg = graphviz_reads(dot.out)
    assert svg.count("pipeline.align [done]") == 4
    assert svg.count("pipeline.call_variants [done]") == 4

    mermaid = cli("log", genomics.run_id[:8], "--format", "mermaid")
    assert mermaid.code == 0, mermaid.err
    nodes, edges = mermaid_graph(mermaid.out)
    labels = sorted(nodes.values())
    assert labels.count("pipeline.align [done]") == 4
    assert labels.count("pipeline.call_variants [done]") == 4
    assert len(edges) == len(nodes) - 1  # a tree: the run, its entry call, the calls it made


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_a_files_derivation_as_dot_and_mermaid(genomics: Genomics, cli: Cli) -> None:
    dot = cli("dataflow", "out/sample1.vcf", "--format", "dot")
    assert dot.code == 0, dot.err
    svg = graphviz_reads(dot.out)
    for text in ("call_variants", "align", "File(&#39;out/sample1.bam&#39;)",
                 "File(&#39;genomics/data/sample1.fastq&#39;)"):
        assert text in svg, text

    mermaid = cli("dataflow", "out/sample1.vcf", "--format", "mermaid")
    assert mermaid.code == 0, mermaid.err
    nodes, edges = mermaid_graph(mermaid.out)
    ids = {label.split(" = ")[0] if " = " in label else label.split("> ")[-1]: node
           for node, label in nodes.items()}
    chain = [("reads", "align"), ("align", "bam"), ("bam", "call_variants"),
             ("call_variants", "value")]
    for source, target in chain:  # fastq -> align -> bam -> call_variants -> vcf
        assert (ids[source], ids[target]) in edges, (source, target)
    assert "File('out/sample1.vcf')" in nodes[ids["value"]]

    unknown = cli("dataflow", "out/nothing.vcf", "--format", "dot")
    assert unknown.code != 0 and len(unknown.err.strip().splitlines()) == 1
    bad = cli("log", genomics.run_id, "--format", "png")
    assert bad.code == 2 and "png" in bad.err
