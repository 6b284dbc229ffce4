"""The ValueStore contract, run over every implementation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ledgerflow.errors import NotFoundError, UsageError
from ledgerflow.hashing import hash_value
from ledgerflow.values import DirectoryStore, MemoryStore, ValueStore

STORES: dict[str, Callable[[Path], ValueStore]] = {
    "directory": lambda root: DirectoryStore(root / "values"),
    "directory-durable": lambda root: DirectoryStore(root / "values", durable=True),
    "memory": lambda root: MemoryStore(),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ValueStore:
    return STORES[request.param](tmp_path)


def test_every_store_is_covered_by_the_contract() -> None:
    implementations = {type(factory(Path("unused"))) for factory in STORES.values()}
    assert implementations == set(ValueStore.__subclasses__())


def test_put_get_exists_delete(store: ValueStore) -> None:
    digest = hash_value("payload")
    assert not store.exists(digest)
    key = store.put(digest, b"payload bytes")
    assert store.exists(key)
    assert store.get(key) == b"payload bytes"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)


def test_put_is_idempotent_and_keeps_the_first_bytes(store: ValueStore) -> None:
    digest = hash_value(1)
    assert store.put(digest, b"first") == store.put(digest, b"second") == digest
    assert store.get(digest) == b"first"


def test_missing_key_is_not_found(store: ValueStore) -> None:
    with pytest.raises(NotFoundError, match=hash_value(2)):
        store.get(hash_value(2))


@pytest.mark.parametrize("key", ["../../etc/passwd", "ab/cd", "", "AB12", "a" * 2, 123])
def test_keys_that_are_not_hex_digests_are_refused(store: ValueStore, key: object) -> None:
    for call in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key)):  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="invalid value key"):
            call()


def test_concurrent_writers_of_one_key(store: ValueStore) -> None:
    digest = hash_value("shared")
    blob = b"x" * 1_000_000
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(5):
                store.put(digest, blob)
                assert store.get(digest) == blob
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.get(digest) == blob


def test_directory_store_layout_and_no_temp_files(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    digest = hash_value("layout")
    store.put(digest, b"data")
    assert (tmp_path / digest[:2] / digest[2:]).read_bytes() == b"data"
    assert [p.name for p in (tmp_path / digest[:2]).iterdir()] == [digest[2:]]
