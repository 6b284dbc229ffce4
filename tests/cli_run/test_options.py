"""A task's signature as command-line options (no database involved)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Literal, Optional

import click
import pytest
from click.testing import CliRunner

from ledgerflow.cli.params import TaskCommand, parameter_help, task_interface
from ledgerflow.engine.task import Call, task
from ledgerflow.errors import UsageError
from ledgerflow.values.file import File


class Caller(enum.Enum):
    gatk = "gatk"
    bcftools = "bcftools"


class Level(enum.Enum):
    low = 1
    high = 2


@task
def scalars(n: int, ratio: float = 0.5, name: str = "x", out: Path = Path("o")) -> None:
    """Scalars of every kind."""


@task
def flags(verbose: bool = False, strict: bool = True) -> None:
    pass


@task
def lists(ids: list[int] = [1, 2], names: tuple[str, ...] = (), paths: list[Path] = []) -> None:  # noqa: B006
    pass


@task
def choices(caller: Caller = Caller.gatk, level: Level = Level.low, mode: Literal["a", "b"] = "a") -> None:
    pass


@task
def optional(limit: Optional[int] = None, label: str | None = None) -> None:  # noqa: UP045
    pass


@task
def files(reads: File, reference: File | None = None) -> None:
    pass


@task
def dashed(max_depth: int = 3, min_base_quality: float = 20.0) -> None:
    pass


@task
def clashing(workers: int = 1, json: bool = False) -> None:
    pass


@task
def unsupported_with_default(n: int = 1, extra: dict[str, int] | None = None) -> None:
    pass


@task
def unsupported_required(mapping: dict[str, int]) -> None:
    pass


@task
def documented(n: int = 10, multiplier: int = 2) -> list[int]:
    """Reduce n generated values with a multiplier.

    Args:
        n: how many values to generate.
        multiplier: what each value is
            multiplied by.
    """
    return []


TASKS = {name: obj for name, obj in globals().items() if hasattr(obj, "__ledgerflow_task__")}


@click.command(cls=TaskCommand, load=lambda ctx, target: TASKS[target.partition(":")[2]])
@click.argument("target", required=False)
@click.option("--workers", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-cache", is_flag=True)
@click.pass_context
def probe(ctx: click.Context, target: str, workers: int | None, as_json: bool, no_cache: bool) -> None:
    """Generic help of the probe command."""
    ctx.obj["call"] = ctx.meta.get("ledgerflow.call")
    ctx.obj["own"] = {"workers": workers, "json": as_json, "no_cache": no_cache}


def parse(*args: str) -> tuple[Call, dict[str, Any]]:
    obj: dict[str, Any] = {}
    result = CliRunner().invoke(probe, list(args), obj=obj, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return obj["call"], obj["own"]


def fails(*args: str) -> str:
    result = CliRunner().invoke(probe, list(args), obj={})
    assert result.exit_code == 2, result.output
    return result.output


def test_scalars_parse_to_their_types() -> None:
    call, _ = parse("m:scalars", "--n", "3", "--ratio", "1.5", "--name", "y", "--out", "d/f.txt")
    assert call.task is scalars
    assert call.arguments == {"n": 3, "ratio": 1.5, "name": "y", "out": Path("d/f.txt")}


def test_left_out_options_take_the_signature_defaults() -> None:
    call, _ = parse("m:scalars", "--n", "1")
    assert call.arguments == {"n": 1, "ratio": 0.5, "name": "x", "out": Path("o")}


def test_bad_int_is_a_usage_error() -> None:
    assert "'three' is not a valid integer" in fails("m:scalars", "--n", "three")


def test_parameter_without_default_is_required() -> None:
    assert "Missing option '--n'" in fails("m:scalars")


def test_bool_flags_have_a_negative_form() -> None:
    call, _ = parse("m:flags", "--verbose", "--no-strict")
    assert call.arguments == {"verbose": True, "strict": False}
    call, _ = parse("m:flags")
    assert call.arguments == {"verbose": False, "strict": True}


def test_lists_are_repeated_options() -> None:
    call, _ = parse("m:lists", "--ids", "4", "--ids", "5", "--names", "a", "--paths", "p")
    assert call.arguments == {"ids": [4, 5], "names": ("a",), "paths": [Path("p")]}
    assert type(call.arguments["ids"][0]) is int
    call, _ = parse("m:lists")
    assert call.arguments["ids"] == [1, 2]


def test_enums_and_literals_are_choices() -> None:
    call, _ = parse("m:choices", "--caller", "bcftools", "--level", "high", "--mode", "b")
    assert call.arguments == {"caller": Caller.bcftools, "level": Level.high, "mode": "b"}
    out = fails("m:choices", "--caller", "freebayes")
    assert "'freebayes' is not one of 'gatk', 'bcftools'" in out


def test_optional_unwraps_to_the_inner_type() -> None:
    call, _ = parse("m:optional", "--limit", "7")
    assert call.arguments == {"limit": 7, "label": None}
    assert "not a valid integer" in fails("m:optional", "--limit", "x")


def test_file_options_become_file_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = tmp_path / "reads.fastq"
    reads.write_text("@r\nACGT\n+\nIIII\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ref.fa").write_text(">chr1\nACGT\n")
    call, _ = parse("m:files", "--reads", str(reads), "--reference", "ref.fa")
    assert isinstance(call.arguments["reads"], File)
    assert call.arguments["reads"].as_path() == reads
    assert call.arguments["reference"] == File("ref.fa")


def test_underscores_become_dashes() -> None:
    call, _ = parse("m:dashed", "--max-depth", "9", "--min-base-quality", "30")
    assert call.arguments == {"max_depth": 9, "min_base_quality": 30.0}
    assert "No such option '--max_depth'" in fails("m:dashed", "--max_depth", "9")


def test_a_parameter_clashing_with_a_command_option_is_prefixed() -> None:
    call, own = parse("m:clashing", "--workers", "2", "--task-workers", "5", "--task-json", "--json")
    assert call.arguments == {"workers": 5, "json": True}
    assert own == {"workers": 2, "json": True, "no_cache": False}


def test_command_options_may_come_before_the_target() -> None:
    call, own = parse("--workers", "4", "--no-cache", "m:scalars", "--n", "2")
    assert call.arguments["n"] == 2
    assert own["workers"] == 4 and own["no_cache"] is True


def test_unsupported_type_with_default_is_not_offered() -> None:
    interface = task_interface(unsupported_with_default)
    assert [o.name for o in interface.options] == ["n"]
    assert interface.not_settable == ("extra",)
    call, _ = parse("m:unsupported_with_default", "--n", "2")
    assert call.arguments == {"n": 2, "extra": None}


def test_unsupported_required_type_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="parameter 'mapping' of task 'unsupported_required' has type"):
        task_interface(unsupported_required)


@pytest.mark.parametrize("order", ["help-first", "help-last"])
def test_help_shows_the_docstring_and_the_task_options(order: str) -> None:
    args = ["--help", "m:documented"] if order == "help-first" else ["m:documented", "--help"]
    result = CliRunner().invoke(probe, args, obj={})
    assert result.exit_code == 0
    out = result.output
    assert "Reduce n generated values with a multiplier." in out
    assert "Generic help of the probe command" not in out
    assert "Args:" not in out  # the parameters' descriptions move to the options list
    assert "Task options:" in out
    assert "--n INT" in out and "how many values to generate." in out
    assert "what each value is multiplied by." in out
    assert "[default: 10]" in out
    assert "--no-cache" in out  # the command's own options are still listed


def test_help_without_target_is_the_generic_help() -> None:
    result = CliRunner().invoke(probe, ["--help"], obj={})
    assert result.exit_code == 0
    assert "Generic help of the probe command" in result.output
    assert "Task options" not in result.output


def test_help_lists_choices_flags_and_required() -> None:
    out = CliRunner().invoke(probe, ["m:choices", "--help"], obj={}).output
    assert "--caller [gatk|bcftools]" in out and "--level [low|high]" in out
    out = CliRunner().invoke(probe, ["m:flags", "--help"], obj={}).output
    assert "--verbose / --no-verbose" in out
    out = CliRunner().invoke(probe, ["m:files", "--help"], obj={}).output
    assert "--reads FILE" in out and "[required]" in out


def test_parameter_help_reads_google_and_rest_docstrings() -> None:
    assert parameter_help(documented.__doc__) == {
        "n": "how many values to generate.",
        "multiplier": "what each value is multiplied by.",
    }
    assert parameter_help(":param int n: how many\n:param ratio: a ratio") == {
        "n": "how many", "ratio": "a ratio"
    }


def test_relative_paths_are_rebased_onto_the_project_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks run in the project directory: a path typed elsewhere must name the same file."""
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)

    def load(ctx: click.Context, target: str) -> Any:
        ctx.meta[TaskCommand.ROOT_KEY] = root
        return TASKS[target.partition(":")[2]]

    rooted = TaskCommand("probe", params=list(probe.params), callback=probe.callback, load=load)

    def arguments(*args: str) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        result = CliRunner().invoke(rooted, list(args), obj=obj)
        assert result.exit_code == 0, result.output
        return obj["call"].arguments  # type: ignore[no-any-return]

    for inputs in (root / "sub", root, tmp_path / "elsewhere"):
        inputs.mkdir(exist_ok=True)
        (inputs / "a.fq").write_text("@r\nACGT\n+\nIIII\n")
    monkeypatch.chdir(root / "sub")
    assert arguments("m:files", "--reads", "a.fq")["reads"] == File("sub/a.fq")
    monkeypatch.chdir(root)
    assert arguments("m:files", "--reads", "a.fq")["reads"] == File("a.fq")
    monkeypatch.chdir(tmp_path)
    assert arguments("m:scalars", "--n", "1", "--out", "project/o.txt")["out"] == Path("o.txt")
    outside = arguments("m:files", "--reads", "elsewhere/a.fq")["reads"]
    assert outside == File(tmp_path / "elsewhere/a.fq")
