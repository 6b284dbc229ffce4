"""W3C PROV of the genomics example's outputs, in the four serialisations of the ``prov``
package, each read back by ``prov`` into the same graph."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from ledgerflow.hashing import file_digest
from ledgerflow.provenance.prov import parse_prov, prov_document, serialize_prov

from .conftest import Cli, Genomics

READABLE = ["json", "xml", "turtle"]


def _labels(document: object, kind: str) -> list[str]:
    return sorted(str(next(iter(r.get_attribute("prov:label")))) for r in document.get_records()  # type: ignore[attr-defined]
                  if type(r).__name__ == kind)


def _statements(provn: str) -> set[tuple[str, ...]]:
    """Each statement's kind and its first two terms (attribute order aside)."""
    return {m.groups() for m in re.finditer(r"^\s+(\w+)\(([^,)]+)(?:, ([^,)\[]+))?", provn, re.M)}


@pytest.mark.parametrize("fmt", READABLE)
def test_each_format_reads_back_into_the_same_graph(genomics: Genomics, cli: Cli, tmp_path: Path,
                                                    fmt: str) -> None:
    out = tmp_path / f"vcf.{fmt}"
    done = cli("export", "--prov", "out/sample4.vcf", "--prov-format", fmt, "-o", str(out))
    assert done.code == 0, done.err
    assert "entities" in done.out and "2 activities" in done.out
    expected = prov_document(genomics.settings, "out/sample4.vcf")
    back = parse_prov(out.read_text(), fmt)
    assert back == expected
    assert _labels(back, "ProvActivity") == ["pipeline.align", "pipeline.call_variants"]
    files = {label for label in _labels(back, "ProvEntity") if "/" in label}
    assert files >= {"genomics/data/sample4.fastq", "genomics/data/reference.fa", "out/sample4.bam",
                     "out/sample4.vcf"}


def test_the_graph_is_the_ledgers(genomics: Genomics) -> None:
    """Which task run used and generated which file: what the ledger recorded."""
    document = json.loads(serialize_prov(prov_document(genomics.settings, "out/sample4.vcf")))
    label = {k: v["prov:label"] for k, v in {**document["entity"], **document["activity"]}.items()}
    used = {(label[u["prov:activity"]], label[u["prov:entity"]], u["prov:role"])
            for u in document["used"].values()}
    assert ("pipeline.align", "genomics/data/sample4.fastq", "reads") in used
    assert ("pipeline.call_variants", "out/sample4.bam", "bam") in used
    generated = {(label[g["prov:entity"]], label[g["prov:activity"]])
                 for g in document["wasGeneratedBy"].values()}
    assert generated == {("out/sample4.bam", "pipeline.align"), ("out/sample4.vcf", "pipeline.call_variants")}
    informed = [(label[i["prov:informed"]], label[i["prov:informant"]])
                for i in document["wasInformedBy"].values()]
    assert informed == [("pipeline.call_variants", "pipeline.align")]
    vcf = next(k for k, v in document["entity"].items() if v["prov:label"] == "out/sample4.vcf")
    content = document["entity"][vcf]["lf:content_hash"]
    assert content == file_digest(genomics.root / "out/sample4.vcf")


def test_prov_n_is_the_same_graph(genomics: Genomics, cli: Cli, tmp_path: Path) -> None:
    """``prov`` writes PROV-N but cannot read it: the PROV-N written must be the PROV-N of the
    graph read back from the PROV-JSON export (the same statements; ``prov`` orders them by
    its own record order)."""
    out = tmp_path / "vcf.provn"
    assert cli("export", "--prov", "out/sample4.vcf", "--prov-format", "provn", "-o", str(out)).code == 0
    from_json = parse_prov(serialize_prov(prov_document(genomics.settings, "out/sample4.vcf")), "json")
    text = out.read_text()
    assert text == prov_document(genomics.settings, "out/sample4.vcf").get_provn() + "\n"
    assert _statements(text) == _statements(from_json.get_provn())
    assert len(_statements(text)) > 20
    assert text.startswith("document\n") and "wasGeneratedBy(lf:file_" in text


def test_an_unknown_format_is_one_line_and_writes_nothing(genomics: Genomics, cli: Cli,
                                                         tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    done = cli("export", "--prov", "out/sample4.vcf", "--prov-format", "rdfxml",
               "-o", str(exports / "vcf.rdf"))
    assert done.code == 2 and len(done.err.strip().splitlines()) == 1
    assert "unknown PROV format 'rdfxml'" in done.err and "json, provn, xml, turtle" in done.err
    assert list(exports.iterdir()) == []


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_without_the_extra_one_line_says_what_to_install(genomics: Genomics, cli: Cli,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("prov", "prov.model"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of it fails, as uninstalled
    done = cli("export", "--prov", "out/sample4.vcf")
    assert done.code == 3 and len(done.err.strip().splitlines()) == 1
    assert "pip install 'ledgerflow[prov]'" in done.err
