"""The pipelines of examples/ run as documented, on a copy of the folder (both dialects)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledgerflow import migrations
from ledgerflow.cli.main import main
from ledgerflow.config import load_settings
from ledgerflow.testing.projects import fresh_models  # noqa: F401  (fixture)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def examples(tmp_path: Path, migrated_database_entry: dict[str, Any], isolated_imports: None,
             fresh_models: None, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A migrated copy of examples/ whose default database is the test's."""
    root = tmp_path / "examples"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(
        "ledgerflow.db*", "out", ".ledgerflow", "__pycache__", "quickstart.sh"))
    config = yaml.safe_load((root / "ledgerflow.yml").read_text())
    assert config["plugins"] == ["tuto.data_reduction"]
    config["databases"]["default"] = migrated_database_entry
    (root / "ledgerflow.yml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(root)
    monkeypatch.delenv("LEDGERFLOW_CONFIG", raising=False)
    migrations.upgrade(load_settings(root / "ledgerflow.yml"))
    return root


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *args, "--json"])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    assert exit_info.value.code in (0, None), err
    return json.loads(out)  # type: ignore[no-any-return]


def test_data_reduction_second_run_is_all_cache_hits(examples: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, "tuto.data_reduction.tasks:main", "--n", "100", "--multiplier", "2")
    assert first["status"] == "done" and first["counts"]["done"] == 201
    assert first["result"].startswith("[0, 20, 40, 60")
    second = run_json(capsys, "tuto.data_reduction.tasks:main", "--n", "100", "--multiplier", "2")
    assert second["counts"]["done"] == 0 and second["counts"]["cached"] >= 1
    assert second["result"] == first["result"]


def test_genomics_outputs_are_files_and_follow_their_inputs(examples: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, "genomics/pipeline.py:main")
    assert first["counts"]["done"] == 9  # main + 4 align + 4 call_variants
    vcf = (examples / "out/sample4.vcf").read_text().splitlines()
    assert vcf[1].startswith("#CHROM") and [line.split("\t")[1] for line in vcf[2:]] == ["76", "191"]
    assert run_json(capsys, "genomics/pipeline.py:main")["counts"]["done"] == 0

    (examples / "out/sample4.vcf").unlink()
    again = run_json(capsys, "genomics/pipeline.py:main")
    assert again["counts"]["done"] == 2  # main, and the call that wrote the deleted file
    assert (examples / "out/sample4.vcf").exists()

    fastq = examples / "genomics/data/sample2.fastq"
    fastq.write_text(fastq.read_text().replace("@sample2_read1\n", "@sample2_read1_renamed\n"))
    edited = run_json(capsys, "genomics/pipeline.py:main")
    assert edited["counts"]["done"] == 3  # main, align(sample2) and call_variants of its new BAM
