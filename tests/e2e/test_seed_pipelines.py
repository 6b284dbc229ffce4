"""The seeds' example pipelines, run as written there (only the import lines differ).

(a) redun's dataflow documentation: the genomics workflow (``align_reads`` ... ``main``),
    whose tasks build output paths with ``fastq.path.replace("fastq", "bam")``, and the
    ``dataflow`` sections it documents for ``sample4.vcf``;
(b) the Outflow tutorial's ``Compute`` task, which queries ``context.session`` and reads
    ``context.args.multiplier``;
(c) the Flask-SQLAlchemy tutorial's "play time" session, typed into ``ledgerflow shell``
    (``db.session``, ``User.query.all()``, ``User.query.get(1)``, ``u.posts.all()``).
"""
# ruff: noqa: UP006, UP032, UP035

from __future__ import annotations

import importlib
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, List, cast

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import select

import ledgerflow
from ledgerflow import File, task
from ledgerflow.cli.main import cli
from ledgerflow.config.settings import Settings
from ledgerflow.db import Database, query_session
from ledgerflow.db.plugins import load_plugins
from ledgerflow.errors import ContextError
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


# --------------------------------------------------------------------------- (c) Flask play time

MICROBLOG = """
    from sqlalchemy import Column, DateTime, ForeignKey, Integer, String
    from sqlalchemy.orm import relationship
    from ledgerflow.db import Model

    class User(Model):
        id = Column(Integer, primary_key=True)
        nickname = Column(String(64), index=True, unique=True)
        email = Column(String(120), index=True, unique=True)
        posts = relationship('Post', backref='author', lazy='dynamic')

        def __repr__(self):
            return '<User %r>' % (self.nickname)

    class Post(Model):
        id = Column(Integer, primary_key = True)
        body = Column(String(140))
        timestamp = Column(DateTime)
        user_id = Column(Integer, ForeignKey('user.id'))

        def __repr__(self):
            return '<Post %r>' % (self.body)
"""

# The tutorial's "play time" session as typed at its prompt; ``from app import db, models``
# is the one line left out: the shell has both names ready.
PLAY_TIME = """\
u = models.User(nickname='john', email='john@email.com')
db.session.add(u)
db.session.commit()
u = models.User(nickname='susan', email='susan@email.com')
db.session.add(u)
db.session.commit()
users = models.User.query.all()
users
for u in users:
    print(u.id,u.nickname)

u = models.User.query.get(1)
u
import datetime
u = models.User.query.get(1)
p = models.Post(body='my first post!', timestamp=datetime.datetime.utcnow(), author=u)
db.session.add(p)
db.session.commit()
u = models.User.query.get(1)
u
posts = u.posts.all()
posts
for p in posts:
    print(p.id,p.author.nickname,p.body)

u = models.User.query.get(2)
u
u.posts.all()
models.User.query.order_by('nickname desc').all()
"""
PLAY_TIME_OUTPUT = [
    "[<User 'john'>, <User 'susan'>]",
    "1 john",
    "2 susan",
    "<User 'john'>",
    "<User 'john'>",
    "[<Post 'my first post!'>]",
    "1 john my first post!",
    "<User 'susan'>",
    "[]",
    "[<User 'susan'>, <User 'john'>]",
]
CLEAN_UP = """\
users = models.User.query.all()
for u in users:
    db.session.delete(u)

posts = models.Post.query.all()
for p in posts:
    db.session.delete(p)

db.session.commit()
"""


def test_flask_play_time_session_in_ledgerflow_shell(
    tmp_path: Path, database_entry: dict[str, Any], fresh_models: None
) -> None:
    write_plugin(tmp_path, "app", MICROBLOG)
    settings = make_project(tmp_path, database_entry, plugins=["app"])
    cli_output(settings, "db", "upgrade", "heads")
    cli_output(settings, "db", "make-migrations", "--plugin", "app", "-m", "users and posts")
    cli_output(settings, "db", "upgrade")

    def shell(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledgerflow", "--config", str(settings.path), "shell", *args],
            input=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        )

    played = shell(PLAY_TIME, "--plain")
    assert played.returncode == 0 and "Traceback" not in played.stderr, played.stderr
    assert "models: Post, User" in played.stderr  # the banner
    printed = [re.sub(r"^((>>>|\.\.\.) ?)+", "", line).strip()  # the console's prompts
               for line in played.stdout.splitlines()]
    assert [line for line in printed if line] == PLAY_TIME_OUTPUT

    with Database(settings) as db, db.engine().connect() as conn:  # committed, on disk
        rows = conn.execute(sa.text('SELECT u.nickname, p.body FROM post p JOIN "user" u '
                                    "ON u.id = p.user_id")).all()
        assert [tuple(r) for r in rows] == [("john", "my first post!")]

    unsaved = shell("", "-c", "db.session.add(User(nickname='x', email='x@x')); db.session.flush()")
    assert unsaved.returncode == 0, unsaved.stderr  # not committed: dropped at exit
    counted = shell("", "-c", "print(len(User.query.all()), len(Post.query.all()))")
    assert counted.stdout.split() == ["2", "1"]
    cleaned = shell(CLEAN_UP, "--plain")
    assert cleaned.returncode == 0 and "Traceback" not in cleaned.stderr, cleaned.stderr
    assert shell("", "-c", "print(User.query.count())").stdout.split() == ["0"]

    broken = shell("", "-c", "User.query.get(1)\nnope()")
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines()[-1] == (
        "Error: NameError: name 'nope' is not defined (line 2)")


def test_model_query_needs_a_session(
    tmp_path: Path, database_entry: dict[str, Any], fresh_models: None
) -> None:
    write_plugin(tmp_path, "app", MICROBLOG)
    settings = make_project(tmp_path, database_entry, plugins=["app"])
    cli_output(settings, "db", "upgrade", "heads")
    cli_output(settings, "db", "make-migrations", "--plugin", "app", "-m", "users and posts")
    cli_output(settings, "db", "upgrade")
    load_plugins(settings)
    user = importlib.import_module("app.models").User
    with pytest.raises(ContextError, match="User.query has no session to query"):
        user.query.all()
    with Database(settings) as db, db.transaction() as session, query_session(session):
        session.add(user(nickname="ann", email="ann@example.com"))
        session.flush()
        assert [u.nickname for u in user.query.filter_by(nickname="ann")] == ["ann"]
        assert user.query.get(1).email == "ann@example.com"
