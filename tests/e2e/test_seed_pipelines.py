"""The seeds' example pipelines, run as written there (only the import lines differ).

(a) redun's dataflow documentation: the genomics workflow (``align_reads`` ... ``main``),
    whose tasks build output paths with ``fastq.path.replace("fastq", "bam")``, and the
    ``dataflow`` sections it documents for ``sample4.vcf``;
(b) the Outflow tutorial's ``Compute`` task, which queries ``context.session`` and reads
    ``context.args.multiplier``.
"""
# ruff: noqa: UP006, UP032, UP035

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any, List, cast

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import ledgerflow
from ledgerflow import File, task
from ledgerflow.cli.main import cli
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database
from ledgerflow.testing.projects import make_project, write_plugin

# --------------------------------------------------------------------------- (a) redun genomics
# Verbatim from the dataflow seed's "here is what the workflow might have been".


@task()
def align_reads(fastq: File, ref_genome: File) -> File:
    reads = cast(str, fastq.read())
    ref = cast(str, ref_genome.read())
    bam = File(fastq.path.replace("fastq", "bam"))
    bam.write("align({}, {})".format(reads, ref))
    return bam


@task()
def call_variants(bam: File, ref_genome: File) -> File:
    align = cast(str, bam.read())
    ref = cast(str, ref_genome.read())
    vcf = File(bam.path.replace("bam", "vcf"))
    vcf.write("calls({}, {})".format(align, ref))
    return vcf


@task()
def align_reads_all(fastqs: List[File], ref_genome: File):
    bams = [align_reads(fastq, ref_genome) for fastq in fastqs]
    return bams


@task()
def call_variants_all(bams: List[File], ref_genome: File):
    vcfs = [call_variants(bam, ref_genome) for bam in bams]
    return vcfs


@task()
def main(fastqs: List[File], ref_genome: File):
    bams = align_reads_all(fastqs, ref_genome)
    vcfs = call_variants_all(bams, ref_genome)
    return vcfs


# ---------------------------------------------------------------------------


def cli_output(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(settings.path), *args])
    assert result.exit_code == 0, f"ledgerflow {' '.join(args)}: {result.output}{result.exception!r}"
    return result.output


@pytest.fixture
def genomics(ledger_settings: Settings, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(project_dir)
    for sample in ("sample1", "sample2", "sample3", "sample4"):
        Path(f"{sample}.fastq").write_text(f"reads of {sample}")
    Path("ref_genome").write_text("ACGT")
    fastqs = [File(f"sample{i}.fastq") for i in range(1, 5)]
    vcfs = ledgerflow.run(main(fastqs, File("ref_genome")), settings=ledger_settings)
    assert [v.path for v in vcfs] == [f"sample{i}.vcf" for i in range(1, 5)]
    assert vcfs[3].read() == "calls(align(reads of sample4, ACGT), ACGT)"
    return ledger_settings


# The seed's dataflow of sample4.vcf, section by section: (routing lines, argument names).
# Hashes are masked; the seed writes a File as ``File(path=..., hash=...)``.
SEED_SECTIONS = {
    "value": (["value <-- <*> call_variants(bam, ref_genome)"], ["bam", "ref_genome"]),
    "bam": (
        [
            "bam <-- argument of <*> call_variants_all(bams, ref_genome)",
            "<-- <*> align_reads_all(fastqs, ref_genome)",
            "<-- <*> align_reads(fastq, ref_genome)",
        ],
        ["fastq", "ref_genome"],
    ),
    "fastq": (
        [
            "fastq <-- argument of <*> align_reads_all(fastqs, ref_genome)",
            "<-- argument of <*> main(fastqs, ref_genome)",
            "<-- origin",
        ],
        [],
    ),
}


def sections(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """``dataflow`` text as {name: (routing lines, argument names)}, hashes masked."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for paragraph in text.strip().split("\n\n")[1:]:  # the first is ``value = ...``
        lines = [re.sub(r"<[0-9a-f]{8}>", "<*>", line.strip()) for line in paragraph.splitlines()]
        routing = [line for line in lines if "<--" in line]
        names = [line.split("=")[0].strip() for line in lines if "<--" not in line]
        found[routing[0].split()[0]] = (routing, names)
    return found


def test_redun_genomics_workflow_runs_and_its_dataflow_has_the_seeds_sections(
    genomics: Settings,
) -> None:
    text = cli_output(genomics, "dataflow", "sample4.vcf")
    assert re.match(r"value = <[0-9a-f]{8}> File\('sample4.vcf'\)\n", text)
    found = sections(text)
    assert set(found) == {"value", "bam", "fastq", "ref_genome"}
    for name, expected in SEED_SECTIONS.items():
        assert found[name] == expected, name
    # ref_genome is shared by both steps; it is traced once, from whichever call reaches it
    # first (the seed shows it from align_reads_all, this walk from call_variants_all).
    routing, names = found["ref_genome"]
    assert routing[0].startswith("ref_genome <-- argument of <*> ") and names == []
    assert routing[-2:] == ["<-- argument of <*> main(fastqs, ref_genome)", "<-- origin"]
    assert "sample1" not in text and "sample3" not in text


# --------------------------------------------------------------------------- (b) Outflow Compute

COMPUTATION_RESULT = """
    from sqlalchemy import Column, Integer, UniqueConstraint
    from ledgerflow.db import Model

    class ComputationResult(Model):
        id_computation_result = Column(Integer, primary_key=True)
        input_value = Column(Integer, nullable=False)
        multiplier = Column(Integer, nullable=False)
        result = Column(Integer, nullable=False)

        __table_args__ = (UniqueConstraint("input_value", "multiplier"),)
"""

# The tutorial's task as written there; only the imports (and the decorator's spelling,
# ``@Task.as_task``) are ledgerflow's. The entry task stands for its ``compute_data`` command.
OUTFLOW_TASKS = '''
import logging
import time

from ledgerflow import context
from ledgerflow import task as _task
from sqlalchemy.orm.exc import NoResultFound

from .models import ComputationResult

logger = logging.getLogger(__name__)


class Task:
    as_task = staticmethod(_task)


@Task.as_task
def Compute(some_data: int) -> {"computation_result": int}:
    # get the session of the default database
    session = context.session

    multiplier = context.args.multiplier

    # Check if the result of the computation is already in the database
    try:
        # query the database with our model ComputationResult
        computation_result_obj = session.query(ComputationResult) \\
            .filter_by(input_value=some_data, multiplier=multiplier).one()

        logger.info("Result found in database")

        # get the result from the model object (ie from the row in the table)
        computation_result = computation_result_obj.result

    except NoResultFound:
        # Result not in the database: compute the value like before
        logger.info("Result not found in database, computing result and inserting")

        # simulate a big computation
        time.sleep(3)
        computation_result = some_data * multiplier

        # create an object ComputationResult
        computation_result_obj = ComputationResult(
            input_value=some_data,
            multiplier=multiplier,
            result=computation_result
        )

        # and insert it in the database
        session.add(computation_result_obj)
        session.commit()

    # return the result for the next task
    return {"computation_result": computation_result}


@_task
def compute_data(some_data: int = 21, multiplier: int = 2) -> dict:
    return Compute(some_data)
'''


def test_outflow_compute_task_queries_context_session_and_reads_context_args(
    tmp_path: Path, database_entry: dict[str, Any], fresh_models: None,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    plugin = "tuto.data_reduction"
    package = write_plugin(tmp_path, plugin, COMPUTATION_RESULT)
    (package / "tasks.py").write_text(OUTFLOW_TASKS, encoding="utf-8")
    settings = make_project(tmp_path, database_entry, plugins=[plugin])
    cli_output(settings, "db", "upgrade", "heads")
    cli_output(settings, "db", "make-migrations", "--plugin", plugin, "-m", "computation result")
    cli_output(settings, "db", "upgrade")
    monkeypatch.syspath_prepend(str(tmp_path))
    tasks = importlib.import_module(f"{plugin}.tasks")
    models = importlib.import_module(f"{plugin}.models")

    first = ledgerflow.run(tasks.compute_data(21, multiplier=2), settings=settings)
    assert first == {"computation_result": 42}
    # Without the ledger's cache, the task runs again and finds its row in the database.
    again = ledgerflow.run(tasks.compute_data(21, multiplier=2), settings=settings, cache=False)
    assert again == {"computation_result": 42}
    with Database(settings) as db, db.session() as session:
        rows = session.execute(select(models.ComputationResult)).scalars().all()
        assert [(r.input_value, r.multiplier, r.result) for r in rows] == [(21, 2, 42)]
    said = [r.getMessage() for r in caplog.records if r.name == f"{plugin}.tasks"]
    assert said == [
        "Result not found in database, computing result and inserting",
        "Result found in database",
    ]
