"""Partial value-store writes of killed writers are removed once stale, never while fresh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

import ledgerflow
from ledgerflow import task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.hashing import hash_value
from ledgerflow.provenance.prune import prune
from ledgerflow.values import DirectoryStore

HOUR = 3600.0


def age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def killed_writer(root: Path) -> Path:
    """Start a process that stores a value and kill it mid-write; return what it left."""
    before = set((root / ".tmp").glob("*"))
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from ledgerflow.values import DirectoryStore
        def stuck(src, dst):
            print("writing", flush=True)
            time.sleep(600)
        os.replace = stuck
        DirectoryStore({str(root)!r}).put({hash_value("killed")!r}, b"half a value")
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (left,) = set((root / ".tmp").iterdir()) - before
    return left


def test_put_leaves_nothing_but_the_value(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    digest = hash_value("clean")
    store.put(digest, b"data")
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert store.remove_partial(older_than=0) == 0
    assert store.get(digest) == b"data"


def test_a_killed_writers_partial_file_is_removed_once_stale(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    left = killed_writer(tmp_path)
    assert left.name.startswith(".tmp-") and left.read_bytes() == b"half a value"
    assert store.remove_partial() == 0  # fresh: its writer might still be at work
    assert left.exists()
    age(left, 2 * HOUR)
    assert store.remove_partial(dry_run=True) == 1 and left.exists()
    assert store.remove_partial() == 1
    assert not left.exists()
    assert not store.exists(hash_value("killed"))


def test_a_concurrent_writer_is_not_disturbed(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    digest = hash_value("in progress")
    real_replace = os.replace
    removed: list[int] = []

    def replace_after_a_clean(src: str, dst: str) -> None:
        removed.append(store.remove_partial())  # another process cleans mid-write
        real_replace(src, dst)

    os.replace = replace_after_a_clean  # type: ignore[assignment]
    try:
        store.put(digest, b"whole value")
    finally:
        os.replace = real_replace
    assert removed == [0]
    assert store.get(digest) == b"whole value"


def test_everywhere_also_finds_the_old_location_beside_the_values(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    digest = hash_value("kept")
    store.put(digest, b"a value")
    old = tmp_path / digest[:2] / ".tmp-abc123"
    old.write_bytes(b"partial")
    age(old, 2 * HOUR)
    assert store.remove_partial() == 0
    assert store.remove_partial(everywhere=True) == 1
    assert not old.exists() and store.get(digest) == b"a value"


@task
def _big(n: int) -> str:
    return "y" * n


@pytest.fixture
def small_inline(ledger_settings: Settings) -> Settings:
    path = ledger_settings.path
    assert path is not None
    path.write_text(path.read_text() + "values: {inline_max_bytes: 100, store: blobs}\n")
    return load_settings(path)


def test_a_run_removes_stale_partial_writes_when_it_starts(small_inline: Settings) -> None:
    root = small_inline.root / "blobs"
    stale = killed_writer(root)
    age(stale, 2 * HOUR)
    fresh = killed_writer(root)
    assert ledgerflow.run(_big(1000), settings=small_inline) == "y" * 1000
    assert not stale.exists()
    assert fresh.exists()  # might belong to a run still writing
    assert sorted(p.name for p in (root / ".tmp").iterdir()) == [fresh.name]


def test_prune_removes_partial_writes_and_reports_them(small_inline: Settings) -> None:
    root = small_inline.root / "blobs"
    ledgerflow.run(_big(1000), settings=small_inline)
    stale = age(killed_writer(root), 2 * HOUR)
    legacy = root / "ab" / ".tmp-old"
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_bytes(b"partial")
    age(legacy, 2 * HOUR)
    dry = prune(small_inline, timedelta(days=30), dry_run=True)
    assert dry.removed["partial_blob"] == 2 and stale.exists() and legacy.exists()
    report = prune(small_inline, timedelta(days=30))
    assert report.removed["partial_blob"] == 2
    assert not stale.exists() and not legacy.exists()
    assert ledgerflow.run(_big(1000), settings=small_inline) == "y" * 1000  # value still there
