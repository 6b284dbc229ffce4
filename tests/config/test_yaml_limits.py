"""An alias bomb in the configuration is refused before it can grow; ordinary anchors work."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledgerflow.config import load_settings
from ledgerflow.errors import ConfigError

SQLITE_DEFAULT = "databases:\n  default: {dialect: sqlite, path: ledger.db}\n"


def laughs(levels: int, indent: str, width: int = 10) -> str:
    """Mapping entries holding ``width ** levels`` strings behind ``levels`` aliases."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"{indent}l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def bomb(levels: int) -> str:
    """A whole "billion laughs" configuration file."""
    return SQLITE_DEFAULT + "executor:\n  options:\n" + laughs(levels, "    ")


def test_alias_bomb_is_refused_within_bounded_memory(tmp_path: Path) -> None:
    """10**9 nodes once expanded: without the limit the loader's copy of the tree exhausts
    the 1 GiB address space given to the child process instead of failing cleanly."""
    path = tmp_path / "ledgerflow.yml"
    path.write_text(bomb(9), encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import resource, sys
        limit = 1024 * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from ledgerflow.config import load_settings
        from ledgerflow.errors import ConfigError
        try:
            load_settings({str(path)!r}, environ={{}})
        except ConfigError as exc:
            print(exc)
            sys.exit(exc.exit_code)
        print("loaded")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert str(path) in proc.stdout
    assert "alias" in proc.stdout
    assert "MemoryError" not in proc.stderr


def test_moderate_bomb_is_refused_in_process(tmp_path: Path) -> None:
    path = tmp_path / "ledgerflow.yml"
    path.write_text(bomb(6), encoding="utf-8")  # a million nodes
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)
    assert "more than 100,000 nodes" in str(info.value)
    assert info.value.exit_code == 3


def test_bomb_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    main = tmp_path / "ledgerflow.yml"
    main.write_text(SQLITE_DEFAULT + "executor: !include executor.yml\n", encoding="utf-8")
    included = tmp_path / "executor.yml"
    included.write_text("options:\n" + laughs(6, "  "), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(main, environ={})
    assert str(included) in str(info.value)


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledgerflow.yml"
    path.write_text(SQLITE_DEFAULT + "executor:\n  options:\n    loop: &loop [1, *loop]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert f"{path}:" in str(info.value)
    assert "recursive" in str(info.value)


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ledgerflow.yml"
    path.write_text(
        textwrap.dedent(
            """\
            databases:
              default: &db {dialect: sqlite, path: ledger.db}
              other:
                <<: *db
                path: other.db
            executor:
              options: {a: &few [1, 2, 3], b: *few, c: *few}
            """
        ),
        encoding="utf-8",
    )
    settings = load_settings(path, environ={})
    assert settings.databases["other"].path == tmp_path / "other.db"
    assert settings.executor.options["b"] == [1, 2, 3]


def test_include_fan_out_is_counted_and_each_file_read_once(tmp_path: Path) -> None:
    """Ten includes of a file that includes ten of the next, four deep, then 21 nodes:
    210,000 nodes once copied out (read file by file, 11,111 reads)."""
    for level in range(4):
        refs = ", ".join([f"!include f{level + 1}.yml"] * 10)
        (tmp_path / f"f{level}.yml").write_text(f"[{refs}]\n", encoding="utf-8")
    (tmp_path / "f4.yml").write_text(f"[{', '.join(['lol'] * 20)}]\n", encoding="utf-8")
    main = tmp_path / "ledgerflow.yml"
    main.write_text(SQLITE_DEFAULT + "executor: {options: {x: !include f0.yml}}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(main, environ={})
    assert "more than 100,000 nodes" in str(info.value)


def test_a_file_included_twice_is_the_same_data(tmp_path: Path) -> None:
    (tmp_path / "db.yml").write_text("{dialect: sqlite, path: ledger.db}\n", encoding="utf-8")
    main = tmp_path / "ledgerflow.yml"
    main.write_text("databases: {default: !include db.yml, copy: !include db.yml}\n")
    settings = load_settings(main, environ={})
    assert settings.databases["default"].path == settings.databases["copy"].path
