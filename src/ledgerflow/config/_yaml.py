"""Reading the raw configuration tree: YAML with ``!include``, then ``${VAR}`` interpolation.

Mappings and lists remember the file they were read from (``.source``) so that every
error can name the right file. Error messages never echo scalar values, which may be secrets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ledgerflow.errors import ConfigError


class SourcedDict(dict[Any, Any]):
    """A YAML mapping that knows which file it came from."""

    source: Path | None = None


class SourcedList(list[Any]):
    """A YAML sequence that knows which file it came from."""

    source: Path | None = None


class Interpolated(str):
    """A string produced by ``${VAR}`` substitution; may be read as an int or a bool."""


class Where:
    """A position in the configuration tree: a file and a dotted key path."""

    def __init__(self, file: str, path: str = "") -> None:
        self.file = file
        self.path = path

    def _file(self, value: object) -> str:
        source = getattr(value, "source", None)
        return str(source) if source is not None else self.file

    def child(self, key: object, value: object = None) -> Where:
        """The position of mapping key ``key``, holding ``value``."""
        return Where(self._file(value), f"{self.path}.{key}" if self.path else str(key))

    def index(self, i: int, value: object = None) -> Where:
        """The position of list item ``i``, holding ``value``."""
        return Where(self._file(value), f"{self.path}[{i}]")

    def error(self, message: str, hint: str | None = None) -> ConfigError:
        """A ``ConfigError`` reading ``<file>: <key.path>: <message>``."""
        where = f"{self.file}: {self.path}" if self.path else self.file
        return ConfigError(f"{where}: {message}", hint=hint)


INCLUDE = "!include"


def _mark(loader: _Loader, node: yaml.Node) -> str:
    return f"{loader.path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


class _Loader(yaml.SafeLoader):
    """A safe loader for one file; ``chain`` lists the files that included it, itself last;
    ``included`` holds the files already read while loading the top file, with their sizes."""

    def __init__(
        self,
        text: str,
        path: Path,
        chain: tuple[Path, ...],
        included: dict[Path, tuple[Any, int]],
    ) -> None:
        super().__init__(text)
        self.path = path
        self.chain = chain
        self.included = included

    def include(self, node: yaml.Node) -> tuple[Any, int]:
        """The data of an ``!include`` and its size in nodes (each file is read once)."""
        if not isinstance(node, yaml.ScalarNode) or not node.value:
            raise ConfigError(f"{_mark(self, node)}: !include expects a file name")
        target = Path(os.path.abspath(self.path.parent / os.path.expanduser(node.value)))
        chain = " -> ".join(str(p) for p in self.chain)
        if target in self.chain:
            raise ConfigError(
                f"{_mark(self, node)}: !include {node.value} makes an include loop: "
                f"{chain} -> {target}"
            )
        found = self.included.get(target)
        if found is not None:
            return found
        if not target.is_file():
            raise ConfigError(
                f"{_mark(self, node)}: !include {node.value}: file not found: {target} "
                f"(include chain: {chain})"
            )
        found = self.included[target] = _load(target, (*self.chain, target), self.included)
        return found


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[SourcedDict]:
    data = SourcedDict()
    data.source = loader.path
    yield data
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            if key_node.value in seen:
                raise ConfigError(f"{_mark(loader, key_node)}: duplicate key '{key_node.value}'")
            seen.add(key_node.value)
    data.update(loader.construct_mapping(node))


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Iterator[SourcedList]:
    data = SourcedList()
    data.source = loader.path
    yield data
    data.extend(loader.construct_sequence(node))


def _construct_include(loader: _Loader, node: yaml.Node) -> Any:
    return loader.include(node)[0]


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor(INCLUDE, _construct_include)

#: How many nodes a configuration may expand to once its aliases and ``!include`` files are
#: followed. Real files have a few hundred; an alias bomb ("billion laughs") has billions.
MAX_NODES = 100_000


def _expanded_size(root: yaml.Node, loader: _Loader) -> int:
    """How many nodes the document becomes once aliases and includes are copied out.

    Refuses more than :data:`MAX_NODES`, and a node that contains itself: without this, the
    interpolated copy of the tree would grow without bound.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if key in open_nodes:
            raise ConfigError(
                f"{_mark(loader, node)}: an alias refers to a node that contains it "
                "(recursive YAML is not allowed)"
            )
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
            if node.tag == INCLUDE:
                total = loader.include(node)[1]
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                break
        if total > MAX_NODES:
            raise ConfigError(
                f"{loader.path}: the YAML expands to more than {MAX_NODES:,} nodes once its "
                "aliases and !include files are followed (an alias bomb?)",
                hint="use fewer or smaller '*alias' references and includes",
            )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file, following ``!include`` relative to the including file."""
    return _load(path, (path,), {})[0]


def _load(
    path: Path, chain: tuple[Path, ...], included: dict[Path, tuple[Any, int]]
) -> tuple[Any, int]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    loader = _Loader(text, path, chain, included)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, 1
        size = _expanded_size(node, loader)
        return loader.construct_document(node), size
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({type(exc).__name__})") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: invalid YAML value ({type(exc).__name__})") from None
    finally:
        loader.dispose()


_TOKEN = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


def expand(text: str, environ: Mapping[str, str], where: Where) -> str:
    """Substitute ``${VAR}`` and ``${VAR:-default}`` in ``text``; ``$$`` is a literal ``$``.

    As in the shell, the default also applies when the variable is set but empty.
    """
    if "$" not in text:
        return text
    substituted = False

    def replace(match: re.Match[str]) -> str:
        nonlocal substituted
        if match.group(0) == "$$":
            return "$"
        body = match.group("body")
        if body is None:
            raise where.error("unterminated '${'", hint="write '$$' for a literal '$'")
        parts = _BODY.fullmatch(body)
        if parts is None:
            raise where.error("invalid variable reference, expected ${NAME} or ${NAME:-default}")
        name, default = parts.group("name"), parts.group("default")
        if default is not None and "${" in default:
            raise where.error(f"nested references in the default of ${{{name}}} are not supported")
        substituted = True
        value = environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is None:
            raise where.error(
                f"environment variable {name} is not set",
                hint=f"set it or write ${{{name}:-default}}",
            )
        return value

    result = _TOKEN.sub(replace, text)
    return Interpolated(result) if substituted else result


def interpolate(data: Any, environ: Mapping[str, str], where: Where) -> Any:
    """A copy of ``data`` with every string scalar expanded; keys are left as they are."""
    if isinstance(data, str):
        return expand(data, environ, where)
    if isinstance(data, Mapping):
        mapping = SourcedDict()
        mapping.source = getattr(data, "source", None)
        for key, value in data.items():
            mapping[key] = interpolate(value, environ, where.child(key, value))
        return mapping
    if isinstance(data, list):
        items = SourcedList()
        items.source = getattr(data, "source", None)
        items.extend(
            interpolate(value, environ, where.index(i, value)) for i, value in enumerate(data)
        )
        return items
    return data
