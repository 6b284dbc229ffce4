"""A task's signature as click options, and a click command whose options come from a task.

``int``, ``float``, ``str``, ``bool`` (``--flag/--no-flag``), ``Path``, ``File``, enums and
``Literal`` (choices), ``list[X]``/``tuple[X, ...]``/``set[X]`` (a repeated option) and
``Optional[X]`` are understood. Parameters without a default are required options; an option
left out is not passed, so the task's own default applies. Underscores become dashes
(``max_depth`` -> ``--max-depth``); a parameter whose option would clash with one of the
command's own options is offered as ``--task-NAME``.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click
from click.core import ParameterSource

from ledgerflow.errors import UsageError

DEST_PREFIX = "task__"
_CONTAINERS = {
    list: list, tuple: tuple, set: frozenset, frozenset: frozenset,
    collections.abc.Sequence: list, collections.abc.Iterable: list,
    collections.abc.Set: frozenset,
}
_ARGS_HEADER = re.compile(r"(Args|Arguments|Parameters|Params):\s*")
SUPPORTED = "int, float, str, bool, Path, File, an Enum, Literal[...], list[...], Optional[...]"


@dataclass(frozen=True)
class TaskOption:
    """One task parameter offered on the command line."""

    name: str
    option: click.Option
    convert: Callable[[Any], Any]
    positional_only: bool = False

    @property
    def dest(self) -> str:
        return DEST_PREFIX + self.name


@dataclass(frozen=True)
class TaskInterface:
    """A task's command-line face: its options, and the parameters the CLI cannot set."""

    task: Any
    options: tuple[TaskOption, ...]
    not_settable: tuple[str, ...]

    def call(self, values: dict[str, Any], given: Callable[[str], bool]) -> Any:
        """The lazy call of the task on the options ``given`` on the command line."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for opt in self.options:
            if not given(opt.dest):
                continue
            value = opt.convert(values[opt.dest])
            if opt.positional_only:
                args.append(value)
            else:
                kwargs[opt.name] = value
        return self.task(*args, **kwargs)


def _is_file_type(annotation: Any) -> bool:
    """``ledgerflow.File`` (or a subclass), recognised without importing the values layer."""
    return isinstance(annotation, type) and any(
        c.__name__ == "File" and c.__module__.startswith("ledgerflow.") for c in annotation.__mro__
    )


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0], True
    return annotation, False


def rebase_paths(root: str | os.PathLike[str]) -> Callable[[str], str]:
    """A converter of relative paths typed here to paths relative to ``root``.

    Tasks run with the project directory as working directory, so ``--reads data/a.fq``
    typed in a sub-folder must name the same file there. Paths outside ``root`` become
    absolute.
    """
    base = os.path.abspath(root)

    def rebase(text: str) -> str:
        path = os.path.expanduser(text)
        if os.path.isabs(path):
            return path
        absolute = os.path.abspath(path)
        relative = os.path.relpath(absolute, base)
        return absolute if relative.startswith("..") else relative

    return rebase


def _same(text: str) -> str:
    return text


def _scalar(
    annotation: Any, rebase: Callable[[str], str] = _same
) -> tuple[click.ParamType, Callable[[Any], Any], str] | None:
    """click type, converter and a display name for a non-container annotation."""
    if annotation is bool:
        return click.BOOL, bool, "bool"
    if annotation in (int, float, str):
        return click.types.convert_type(annotation), annotation, annotation.__name__
    if annotation is Any:
        return click.STRING, str, "str"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        path_type = annotation
        return click.Path(), lambda p: path_type(rebase(str(p))), "path"
    if _is_file_type(annotation):
        file_type = annotation
        return click.Path(dir_okay=False), lambda p: file_type(rebase(str(p))), "file"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_choice(annotation)
    if typing.get_origin(annotation) is Literal:
        literals = typing.get_args(annotation)
        by_text = {str(v): v for v in literals}
        return click.Choice(list(by_text)), by_text.__getitem__, "choice"
    return None


def _enum_choice(cls: type[enum.Enum]) -> tuple[click.ParamType, Callable[[Any], Any], str]:
    members = list(cls)
    values = [m.value for m in members]
    by_value = all(isinstance(v, str) for v in values) and len(set(values)) == len(values)
    if by_value:
        lookup = {m.value: m for m in members}
    else:
        lookup = {m.name: m for m in members}
    return click.Choice(list(lookup)), lookup.__getitem__, cls.__name__


def _click_default(default: Any, click_type: click.ParamType, multiple: bool) -> Any:
    """The signature's default as click shows it, or None when there is none to show.

    It is only displayed: an option left out is not passed, so the task's default applies.
    """
    if default is inspect.Parameter.empty or default is None:
        return None
    if multiple:
        if not isinstance(default, list | tuple | set | frozenset) or not default:
            return None
        items = [_display(v) for v in default]
    else:
        items = [_display(default)]
    try:
        for item in items:
            click_type.convert(item, None, None)
    except (click.BadParameter, TypeError, ValueError):
        return None
    return items if multiple else items[0]


def _display(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name
    if isinstance(value, bool | int | float | str | Path):
        return value
    return str(getattr(value, "path", value))


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except (NameError, TypeError, AttributeError):  # unresolvable forward references
        return dict(getattr(func, "__annotations__", {}))


def parameter_help(doc: str | None) -> dict[str, str]:
    """Descriptions of parameters from a docstring (Google ``Args:`` or ``:param x:`` style)."""
    if not doc:
        return {}
    found: dict[str, str] = {}
    for match in re.finditer(r":param\s+(?:\S+\s+)?(\w+):\s*(.+)", doc):
        found[match.group(1)] = match.group(2).strip()
    lines = inspect.cleandoc(doc).splitlines()
    in_args, current = False, None
    for line in lines:
        if _ARGS_HEADER.fullmatch(line):
            in_args, current = True, None
            continue
        if not in_args:
            continue
        if line and not line[0].isspace():
            in_args = False
            continue
        entry = re.fullmatch(r"\s{1,8}(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
        if entry and (current is None or len(line) - len(line.lstrip()) <= current[1]):
            current = (entry.group(1), len(line) - len(line.lstrip()))
            found[entry.group(1)] = entry.group(2).strip()
        elif current is not None and line.strip():
            found[current[0]] = (found[current[0]] + " " + line.strip()).strip()
    return found


def option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def task_interface(
    task: Any, *, reserved: Iterable[str] = (), rebase: Callable[[str], str] = _same
) -> TaskInterface:
    """Options for every parameter of ``task`` (a Task or a plain function).

    ``rebase`` rewrites the relative paths of ``Path`` and ``File`` options (see
    :func:`rebase_paths`).
    """
    func = getattr(task, "func", task)
    signature = inspect.signature(func)
    hints = _hints(func)
    docs = parameter_help(inspect.getdoc(func))
    taken = set(reserved) | {"--help", "-h"}
    options: list[TaskOption] = []
    not_settable: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, param.annotation)
        option = _task_option(param, annotation, docs.get(param.name), taken, task, rebase)
        if option is None:
            not_settable.append(param.name)
            continue
        taken.update(option.option.opts + option.option.secondary_opts)
        options.append(option)
    return TaskInterface(task, tuple(options), tuple(not_settable))


def _infer(annotation: Any, default: Any) -> Any:
    if annotation is not inspect.Parameter.empty:
        return annotation
    if default is inspect.Parameter.empty or default is None:
        return str
    return type(default)


def _task_option(
    param: inspect.Parameter,
    annotation: Any,
    doc: str | None,
    taken: set[str],
    task: Any,
    rebase: Callable[[str], str],
) -> TaskOption | None:
    default = param.default
    required = default is inspect.Parameter.empty
    inner, _ = _unwrap_optional(_infer(annotation, default))
    origin = typing.get_origin(inner)
    multiple = origin in _CONTAINERS or inner in _CONTAINERS
    if multiple:
        element_args = [a for a in typing.get_args(inner) if a is not Ellipsis] or [str]
        if len(set(element_args)) != 1:
            _unsupported(param, annotation, required, task)
            return None
        spec = _scalar(element_args[0], rebase)
        container = _CONTAINERS[origin or inner]
    else:
        spec = _scalar(inner, rebase)
    if spec is None:
        _unsupported(param, annotation, required, task)
        return None
    click_type, convert, type_name = spec
    flag = option_flag(param.name)
    is_flag = inner is bool
    candidates = [flag, "--no-" + flag[2:]] if is_flag else [flag]
    if any(c in taken for c in candidates):
        flag = option_flag("task_" + param.name)
    decls = [f"{flag}/--no-{flag[2:]}" if is_flag else flag, DEST_PREFIX + param.name]
    help_text = doc or ""
    if flag != option_flag(param.name):
        help_text = f"{help_text} (parameter '{param.name}')".strip()
    if multiple:
        help_text = f"{help_text} [repeatable]".strip()
    extra: dict[str, Any] = {}
    shown = _click_default(default, click_type, multiple)
    if shown is not None:
        extra = {"default": shown, "show_default": True}
    option = click.Option(
        decls,
        type=None if is_flag else click_type,
        is_flag=is_flag or None,
        multiple=multiple,
        required=required,
        help=help_text or None,
        metavar=None if is_flag or isinstance(click_type, click.Choice) else type_name.upper(),
        **extra,
    )
    if type_name == "file":
        convert = _existing_file(convert, flag)
    if multiple:
        convert = _each(convert, container)
    return TaskOption(param.name, option, convert, param.kind == param.POSITIONAL_ONLY)


def _existing_file(convert: Callable[[Any], Any], flag: str) -> Callable[[Any], Any]:
    """A ``File`` option names an input: it must be a file when the command line is read."""

    def checked(text: Any) -> Any:
        path = os.path.expanduser(str(text))
        if not os.path.isfile(path):
            problem = "is a directory, not a file" if os.path.isdir(path) else "does not exist"
            raise UsageError(
                f"{flag}: input file {text} {problem}",
                hint="check the path (relative paths start from the current directory)",
            )
        return convert(text)

    return checked


def _each(convert: Callable[[Any], Any], container: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert_all(values: Iterable[Any]) -> Any:
        return container(convert(v) for v in values)

    return convert_all


def _unsupported(param: inspect.Parameter, annotation: Any, required: bool, task: Any) -> None:
    """Refuse a required parameter the command line cannot give; others keep their default."""
    if not required:
        return
    shown = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    name = getattr(task, "name", getattr(task, "__name__", "task"))
    raise UsageError(
        f"parameter '{param.name}' of task '{name}' has type {shown}, which cannot be "
        f"given on the command line",
        hint=f"use {SUPPORTED}, or give it a default value",
    )


def without_args_section(doc: str) -> str:
    """The docstring minus its ``Args:`` section (the options list shows it)."""
    kept: list[str] = []
    skipping = False
    for line in doc.splitlines():
        if _ARGS_HEADER.fullmatch(line):
            skipping = True
            continue
        if skipping and (not line.strip() or line[:1].isspace()):
            continue
        skipping = False
        kept.append(line)
    return "\n".join(kept).strip()


def _keep_layout(doc: str) -> str:
    """Mark docstring paragraphs with indented lines (argument lists, examples) verbatim."""
    paragraphs = re.split(r"\n\s*\n", doc)
    for i, paragraph in enumerate(paragraphs):
        if any(line[:1].isspace() for line in paragraph.splitlines()[1:]):
            paragraphs[i] = "\b\n" + paragraph
    return "\n\n".join(paragraphs)


class TaskCommand(click.Command):
    """A command ``NAME [OPTIONS] TARGET [TASK OPTIONS]`` whose task options come from TARGET.

    ``load(ctx, target)`` finds the task; it runs before the arguments are parsed, so
    ``--help`` anywhere on the line documents the task's own options and docstring.
    """

    META_KEY = "ledgerflow.task_interface"
    #: ``load`` may put the project directory here: relative paths are rebased onto it.
    ROOT_KEY = "ledgerflow.project_root"
    #: The command's arguments as typed (for the run's recorded command line).
    ARGV_KEY = "ledgerflow.argv"

    def __init__(self, *args: Any, load: Callable[[click.Context, str], Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.load = load

    def interface(self, ctx: click.Context) -> TaskInterface | None:
        return ctx.meta.get(self.META_KEY)

    def _value_options(self) -> set[str]:
        names: set[str] = set()
        for param in self.params:
            if isinstance(param, click.Option) and not param.is_flag and not param.count:
                names.update(param.opts + param.secondary_opts)
        return names

    def find_target(self, args: Sequence[str]) -> str | None:
        """The first positional token, skipping the values of this command's own options."""
        takes_value = self._value_options()
        skip = False
        for i, token in enumerate(args):
            if skip:
                skip = False
            elif token == "--":
                return args[i + 1] if i + 1 < len(args) else None
            elif token.startswith("-") and token != "-":
                skip = token in takes_value
            else:
                return token
        return None

    def reserved(self) -> set[str]:
        return {opt for p in self.params for opt in (*p.opts, *p.secondary_opts)}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[self.ARGV_KEY] = list(args)
        target = self.find_target(args)
        if target is not None and self.META_KEY not in ctx.meta:
            task = self.load(ctx, target)
            root = ctx.meta.get(self.ROOT_KEY)
            rebase = rebase_paths(root) if root is not None else _same
            ctx.meta[self.META_KEY] = task_interface(task, reserved=self.reserved(), rebase=rebase)
        return super().parse_args(ctx, args)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        interface = self.interface(ctx)
        if interface is None:
            return params
        return [*params[: len(self.params)], *(o.option for o in interface.options),
                *params[len(self.params):]]

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        interface = self.interface(ctx)
        if interface is None:
            super().format_help_text(ctx, formatter)
            return
        task = interface.task
        func = getattr(task, "func", task)
        name = getattr(task, "name", func.__name__)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(f"Task {name} ({func.__module__}.{func.__qualname__})")
            doc = without_args_section(inspect.getdoc(func) or "")
            if doc:
                formatter.write_paragraph()
                formatter.write_text(_keep_layout(doc))

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[OPTIONS]", "TARGET", "[TASK OPTIONS]"]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        interface = self.interface(ctx)
        if interface is not None:
            rows = [r for o in interface.options if (r := o.option.get_help_record(ctx))]
            with formatter.section("Task options"):
                formatter.write_dl(rows) if rows else formatter.write_text("(none)")
            if interface.not_settable:
                formatter.write_paragraph()
                with formatter.indentation():
                    formatter.write_text(
                        "Not settable from the command line (their defaults apply): "
                        + ", ".join(interface.not_settable)
                    )
        own = [r for p in super().get_params(ctx) if (r := p.get_help_record(ctx))
               and isinstance(p, click.Option)]
        with formatter.section("Options"):
            formatter.write_dl(own)

    def invoke(self, ctx: click.Context) -> Any:
        interface = self.interface(ctx)
        values = {k: ctx.params.pop(k) for k in list(ctx.params) if k.startswith(DEST_PREFIX)}
        if interface is not None:
            def given(dest: str) -> bool:
                return ctx.get_parameter_source(dest) not in (ParameterSource.DEFAULT, None)

            ctx.meta["ledgerflow.call"] = interface.call(values, given)
        return super().invoke(ctx)
