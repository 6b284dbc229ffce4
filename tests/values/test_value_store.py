"""The ValueStore contract, run over every implementation."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledgerflow.errors import NotFoundError, UsageError, ValueStoreError
from ledgerflow.hashing import hash_value
from ledgerflow.values import DirectoryStore, MemoryStore, ValueStore

STORES: dict[str, Callable[[pytest.FixtureRequest, Path], ValueStore]] = {
    "directory": lambda request, root: DirectoryStore(root / "values"),
    "directory-durable": lambda request, root: DirectoryStore(root / "values", durable=True),
    "memory": lambda request, root: MemoryStore(),
    "ledger": lambda request, root: _ledger_store(request),
    "object": lambda request, root: _object_store(request),
}
#: (store, ledger dialect): the in-ledger store runs on both dialects, the others once.
KINDS = [
    *[pytest.param(kind, "sqlite", id=kind) for kind in sorted(STORES) if kind != "ledger"],
    pytest.param("ledger", "sqlite", id="ledger-sqlite"),
    pytest.param("ledger", "postgresql", id="ledger-postgresql", marks=pytest.mark.postgres),
]


#: Runs a test of the contract on every store.
contract = pytest.mark.parametrize(
    ("store_kind", "database_dialect"), KINDS, indirect=["database_dialect"]
)


def _ledger_store(request: pytest.FixtureRequest) -> ValueStore:
    from ledgerflow.config.loader import load_settings
    from ledgerflow.values.in_ledger import LedgerStore

    settings = load_settings(request.getfixturevalue("ledger_settings").path)
    store = LedgerStore(settings.default)
    request.addfinalizer(store.close)
    return store


def _object_store(request: pytest.FixtureRequest) -> ValueStore:
    from ledgerflow.values.object_store import ObjectStore

    bucket, options = request.getfixturevalue("s3_bucket")
    return ObjectStore(f"s3://{bucket}/values", options)


@pytest.fixture
def store(
    request: pytest.FixtureRequest, store_kind: str, database_dialect: str, tmp_path: Path
) -> ValueStore:
    """Each store; ``database_dialect`` is the ledger of the in-ledger store."""
    return STORES[store_kind](request, tmp_path)


def test_every_store_is_covered_by_the_contract() -> None:
    from ledgerflow.values.in_ledger import LedgerStore
    from ledgerflow.values.object_store import ObjectStore

    covered = {DirectoryStore, MemoryStore, LedgerStore, ObjectStore}
    assert covered == set(ValueStore.__subclasses__())
    assert {"directory", "memory", "ledger", "object"} <= set(STORES)


@contract
def test_put_get_exists_delete(store: ValueStore) -> None:
    digest = hash_value("payload")
    assert not store.exists(digest)
    key = store.put(digest, b"payload bytes")
    assert store.exists(key)
    assert store.get(key) == b"payload bytes"
    store = _deleter(store, key)
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)


def _deleter(store: ValueStore, key: str) -> ValueStore:
    """The store itself, or for one in a PostgreSQL ledger, the same with the admin role:
    the user role may add chunks but never delete (or rewrite) them."""
    from ledgerflow.db.engines import create_bind_engine
    from ledgerflow.values.in_ledger import LedgerStore

    if not isinstance(store, LedgerStore) or store.db.dialect != "postgresql":
        return store
    with pytest.raises(ValueStoreError, match="permission denied") as refused:
        store.delete(key)
    assert "\n" not in str(refused.value) and "admin" in str(refused.value)
    assert store.get(key) == b"payload bytes"
    return LedgerStore(store.db, engine=create_bind_engine(store.db, "admin"))


@contract
def test_put_is_idempotent_and_keeps_the_first_bytes(store: ValueStore) -> None:
    digest = hash_value(1)
    assert store.put(digest, b"first") == store.put(digest, b"second") == digest
    assert store.get(digest) == b"first"


@contract
def test_missing_key_is_not_found(store: ValueStore) -> None:
    with pytest.raises(NotFoundError, match=hash_value(2)):
        store.get(hash_value(2))


@pytest.mark.parametrize("key", ["../../etc/passwd", "ab/cd", "", "AB12", "a" * 2, 123])
@contract
def test_keys_that_are_not_hex_digests_are_refused(store: ValueStore, key: object) -> None:
    for call in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key)):  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="invalid value key"):
            call()


@contract
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


@pytest.mark.skipif(not hasattr(os, "umask") or os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("umask", [0o002, 0o022, 0o077])
def test_directory_store_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    """A file of a folder store gets the mode the umask gives (a group sharing the folder
    with umask 002 can read each other's values), not the 0600 of a private temp file."""
    store = DirectoryStore(tmp_path)
    digest = hash_value(f"mode {umask}")
    old = os.umask(umask)
    try:
        store.put(digest, b"data")
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path(digest).stat().st_mode) == 0o666 & ~umask


@contract
def test_a_value_written_in_parts_larger_than_a_chunk_reads_back_whole(
    store: ValueStore,
) -> None:
    import numpy as np

    from ledgerflow.values.store import CHUNK_SIZE

    array = np.arange(CHUNK_SIZE // 4 + 1000, dtype=np.int64)  # two chunks and a bit
    parts = [b"header:", memoryview(array), b"", b":trailer"]
    digest = hash_value("parts")
    store.write(digest, parts)
    expected = b"header:" + array.tobytes() + b":trailer"
    assert store.get(digest) == expected
    with store.open(digest) as stream:
        assert stream.read(7) == b"header:"
        assert stream.read() == expected[7:]


@contract
def test_an_empty_value_is_stored(store: ValueStore) -> None:
    digest = hash_value("empty")
    store.put(digest, b"")
    assert store.exists(digest) and store.get(digest) == b""


@contract
def test_no_reader_sees_a_value_before_its_last_byte_is_written(store: ValueStore) -> None:
    digest = hash_value("atomic")
    seen: list[bool] = []

    def parts() -> Iterator[bytes]:
        yield b"first half, "
        seen.append(store.exists(digest))
        with pytest.raises(NotFoundError):
            store.get(digest)
        yield b"second half"

    store.write(digest, parts())
    assert seen == [False]
    assert store.get(digest) == b"first half, second half"


@contract
def test_a_writer_that_fails_midway_leaves_nothing(store: ValueStore) -> None:
    digest = hash_value("failed")

    def parts() -> Iterator[bytes]:
        yield b"some bytes"
        raise RuntimeError("the encoder failed")

    with pytest.raises(RuntimeError, match="the encoder failed"):
        store.write(digest, parts())
    assert not store.exists(digest)
    store.put(digest, b"written again")
    assert store.get(digest) == b"written again"


@contract
def test_a_store_works_once_pickled(store: ValueStore) -> None:
    """What a dask worker gets: the store, pickled without its connections, opens its own."""
    import pickle

    if isinstance(store, MemoryStore):
        pytest.skip("a memory store lives in one process")  # nothing to share
    digest = hash_value("pickled")
    copy = pickle.loads(pickle.dumps(store))
    copy.put(digest, b"from the copy")
    assert store.get(digest) == b"from the copy"
    copy.close()


@contract
def test_an_encoder_writes_into_an_upload_like_a_file(store: ValueStore) -> None:
    import pickle

    import numpy as np

    from ledgerflow.values.store import CHUNK_SIZE

    value = {"array": np.arange(CHUNK_SIZE // 8 * 2 + 5, dtype=np.float64), "name": "x"}
    digest = hash_value("pickled by a Pickler")
    with store.writer(digest) as upload:
        assert not upload.stored
        pickle.Pickler(upload, protocol=5).dump(value)  # type: ignore[arg-type]
    with store.open(digest) as stream:
        back = pickle.load(stream)
    assert np.array_equal(back["array"], value["array"]) and back["name"] == "x"
    assert upload.size == len(store.get(digest))
    with store.writer(digest) as again:
        assert again.stored  # already there: what is written now is dropped
        again.write(b"other bytes")
    assert pickle.loads(store.get(digest))["name"] == "x"
