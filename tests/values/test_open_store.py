"""``values.store`` in the configuration and :func:`ledgerflow.values.open_store`."""

from __future__ import annotations

from pathlib import Path

import pytest

import ledgerflow
from ledgerflow import task
from ledgerflow.config.loader import load_settings
from ledgerflow.config.settings import Settings
from ledgerflow.errors import ConfigError
from ledgerflow.testing.pipelines import LedgerRows
from ledgerflow.values import DirectoryStore, open_store

SQLITE = "databases:\n  default: {dialect: sqlite, path: ledger.db}\n"


def _settings(tmp_path: Path, values: str) -> Settings:
    path = tmp_path / "ledgerflow.yml"
    path.write_text(SQLITE + values)
    return load_settings(path, environ={})


def test_a_folder_relative_to_the_configuration(tmp_path: Path) -> None:
    store = open_store(_settings(tmp_path, "values: {store: blobs}\n"))
    assert isinstance(store, DirectoryStore) and store.root == tmp_path / "blobs"


def test_a_file_url_is_a_shared_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared values"
    settings = _settings(tmp_path, f"values: {{store: 'file://{shared.as_posix()}'}}\n")
    assert settings.values.store == shared
    store = open_store(settings)
    assert isinstance(store, DirectoryStore) and store.root == shared


def test_a_file_url_needs_a_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"values\.store: a file:// URL needs a path"):
        _settings(tmp_path, "values: {store: 'file://'}\n")


def test_without_a_store_sqlite_keeps_its_local_folder(tmp_path: Path) -> None:
    store = open_store(_settings(tmp_path, ""))
    assert isinstance(store, DirectoryStore)
    assert store.root == tmp_path / ".ledgerflow" / "values"


@task
def _big(n: int) -> str:
    return "v" * n


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_a_run_keeps_its_large_values_in_the_file_url_store(
    ledger_settings: Settings, tmp_path: Path
) -> None:
    shared = tmp_path / "elsewhere"
    path = ledger_settings.path
    assert path is not None
    path.write_text(
        path.read_text() + f"values: {{inline_max_bytes: 100, store: 'file://{shared}'}}\n"
    )
    settings = load_settings(path)
    assert ledgerflow.run(_big(5000), settings=settings) == "v" * 5000
    rows = LedgerRows(settings)
    try:
        [row] = [r for r in rows.rows("lf_value") if r["store_key"] is not None]
    finally:
        rows.close()
    assert (shared / row["store_key"][:2] / row["store_key"][2:]).is_file()
    assert not (tmp_path / ".ledgerflow" / "values").exists()
    assert ledgerflow.run(_big(5000), settings=settings) == "v" * 5000


def test_ledger_names_the_ledger_database_and_dot_slash_ledger_a_folder(tmp_path: Path) -> None:
    from ledgerflow.values.in_ledger import LedgerStore

    store = open_store(_settings(tmp_path, "values: {store: ledger}\n"))
    assert isinstance(store, LedgerStore) and "ledger.db" in store.describe()
    folder = open_store(_settings(tmp_path, "values: {store: ./ledger}\n"))
    assert isinstance(folder, DirectoryStore) and folder.root == tmp_path / "ledger"


def test_a_postgresql_ledger_keeps_large_values_in_itself_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    from ledgerflow.values.in_ledger import LedgerStore

    path = tmp_path / "ledgerflow.yml"
    pg = "databases:\n  default: {dialect: postgresql, address: h, database: d, user: u}\n"
    path.write_text(pg)
    assert isinstance(open_store(load_settings(path, environ={})), LedgerStore)
    path.write_text(pg + "values: {store: /srv/values}\n")
    folder = open_store(load_settings(path, environ={}))
    assert isinstance(folder, DirectoryStore) and folder.root == Path("/srv/values")


def test_an_object_store_url_with_its_options(tmp_path: Path) -> None:
    from ledgerflow.values.object_store import ObjectStore

    settings = _settings(
        tmp_path,
        "values: {store: 's3://bucket/team/', store_options: {endpoint_url: 'http://h:9000'}}\n",
    )
    store = open_store(settings)
    assert isinstance(store, ObjectStore)
    assert store.url == "s3://bucket/team" and store.options == {"endpoint_url": "http://h:9000"}


def test_an_object_store_whose_package_is_missing_says_what_to_install(tmp_path: Path) -> None:
    from ledgerflow.errors import MissingExtraError
    from ledgerflow.hashing import hash_value

    store = open_store(_settings(tmp_path, "values: {store: 'gs://bucket/values'}\n"))
    with pytest.raises(MissingExtraError, match="gcsfs") as info:
        store.exists(hash_value("x"))
    assert "gs://bucket/values" in str(info.value) and "\n" not in str(info.value)
