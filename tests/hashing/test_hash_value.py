"""hash_value: canonical, type-tagged, order-independent where it should be, stable across processes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from ledgerflow.errors import SerializationError, UsageError
from ledgerflow.hashing import HEX_LENGTH, combine, fingerprint, hash_bytes, hash_value

HERE = Path(__file__).parent


def _import_samples() -> ModuleType:
    """Import hash_samples.py under the name the child process imports it by."""
    spec = importlib.util.spec_from_file_location("hash_samples", HERE / "hash_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hash_samples"] = module
    spec.loader.exec_module(module)
    return module


hash_samples = _import_samples()


def test_hash_is_40_hex_chars() -> None:
    digest = hash_value("x")
    assert len(digest) == HEX_LENGTH == 40
    int(digest, 16)
    assert len(hash_bytes(b"x")) == 40


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (True, 1),
        (False, 0),
        (1, 1.0),
        (0.0, -0.0),
        (1, "1"),
        ("a", b"a"),
        (b"a", bytearray(b"a")),
        ([1, 2], (1, 2)),
        ({1, 2}, frozenset({1, 2})),
        ([], ()),
        (None, ""),
        ([[1], 2], [1, [2]]),
        (("ab", "c"), ("a", "bc")),
        ({"a": 1}, [("a", 1)]),
        (1 + 0j, 1),
        (hash_samples.Pair(1, 2), (1, 2)),
        (OrderedDict(a=1), {"a": 1}),
        (hash_samples.Colour.RED, 1),
        (Path("a"), "a"),
        (10**5000, 10**5000 + 1),
    ],
    ids=lambda value: type(value).__name__,
)
def test_distinct_values_have_distinct_hashes(a: object, b: object) -> None:
    assert hash_value(a) != hash_value(b)


def test_equal_content_hashes_equal() -> None:
    assert hash_value([1, "a", (2.5, None)]) == hash_value([1, "a", (2.5, None)])
    assert hash_value(float("nan")) == hash_value(float("nan"))
    assert hash_value(hash_samples.Sample("a", [1], frozenset())) == hash_value(
        hash_samples.Sample("a", [1], frozenset())
    )


def test_dicts_and_sets_ignore_order() -> None:
    forward = {f"k{i}": [i, {"nested": i}] for i in range(30)}
    backward = dict(reversed(list(forward.items())))
    assert list(forward) != list(backward)
    assert hash_value(forward) == hash_value(backward)
    assert hash_value({3, 1, 2}) == hash_value({2, 3, 1})
    assert hash_value({"a": 1, "b": 2}) != hash_value({"a": 2, "b": 1})


def test_path_hashes_the_path_not_the_content(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("one")
    before = hash_value(target)
    target.write_text("two")
    assert hash_value(target) == before
    assert hash_value(tmp_path / "b.txt") != before


def test_dataclass_hash_covers_type_and_fields() -> None:
    @dataclass
    class Other:
        name: str
        reads: list[int]
        tags: frozenset[str]

    sample = hash_samples.Sample("s", [1], frozenset({"t"}))
    assert hash_value(sample) != hash_value(Other("s", [1], frozenset({"t"})))
    assert hash_value(sample) != hash_value(hash_samples.Sample("s", [2], frozenset({"t"})))


def test_hash_is_stable_across_processes_and_hash_seeds() -> None:
    parent = {name: hash_value(value) for name, value in hash_samples.samples().items()}
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(HERE))
    child = subprocess.run(
        [sys.executable, "-c", "import hash_samples; hash_samples.dump()"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(child.stdout) == parent
    assert json.loads(child.stderr) == [], "hashing plain values must not import numpy/pandas"


def test_known_digest_does_not_drift() -> None:
    # Changing the encoding invalidates every cache entry ever written: do it on purpose only.
    assert hash_value(1) == "1f77c7bf2891038210a766caa90f2e3229bf2e54"
    assert hash_value([1, (2, 3), {"a": [1]}]) == "1d77bd5310881b6fa1900e16df3086a28075cbef"


def test_deep_nesting_does_not_hit_the_recursion_limit() -> None:
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    assert len(hash_value(deep)) == 40
    mixed: object = 0
    for i in range(2000):
        mixed = {"level": i, "child": (mixed,)}
    assert hash_value(mixed) != hash_value({"level": 1999, "child": (0,)})


def test_self_referencing_value_is_a_clear_error() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    with pytest.raises(SerializationError, match="contains itself"):
        hash_value(loop)


def test_shared_substructure_is_not_a_cycle() -> None:
    shared = [1, 2]
    assert hash_value([shared, shared]) == hash_value([[1, 2], [1, 2]])


def test_ledgerflow_hash_protocol_is_used_as_is() -> None:
    class Custom:
        def __init__(self, key: str) -> None:
            self.key = key

        def __ledgerflow_hash__(self) -> str:
            return hash_value(("custom", self.key))

    assert hash_value(Custom("a")) == hash_value(("custom", "a"))
    assert hash_value([Custom("a")]) == hash_value([Custom("a")])
    assert hash_value([Custom("a")]) != hash_value([Custom("b")])


def test_registered_fingerprint_wins_and_sees_only_chosen_fields() -> None:
    class Point:
        def __init__(self, x: int, y: int, cache: object = None) -> None:
            self.x, self.y, self.cache = x, y, cache

    assert hash_value(Point(1, 2, "a")) != hash_value(Point(1, 2, "b"))

    @fingerprint.register(Point)
    def _point(p: Point) -> str:
        return combine("Point", hash_value((p.x, p.y)))

    assert hash_value(Point(1, 2, "a")) == hash_value(Point(1, 2, "b"))
    assert fingerprint(Point(1, 2)) == hash_value(Point(1, 2))
    assert hash_value({"p": Point(1, 2)}) != hash_value({"p": Point(2, 1)})
    assert fingerprint([1]) == hash_value([1])


def test_fingerprint_returning_non_str_is_a_usage_error() -> None:
    class Bad:
        def __ledgerflow_hash__(self) -> int:
            return 5

    with pytest.raises(UsageError, match="expected a str"):
        hash_value(Bad())


def test_plain_objects_hash_their_attributes_in_any_order() -> None:
    one = hash_samples.Plain(1, 2)
    two = hash_samples.Plain.__new__(hash_samples.Plain)
    two.b, two.a = 2, 1
    assert hash_value(one) == hash_value(two)
    assert hash_value(one) != hash_value(hash_samples.Plain(1, 3))


def test_unpicklable_value_without_fingerprint_names_its_type() -> None:
    with pytest.raises(SerializationError, match="_thread.lock"):
        hash_value([threading.Lock()])


@dataclass
class _WithDefault:
    items: list[int] = field(default_factory=list)


def test_dataclass_fields_nest_containers() -> None:
    assert hash_value(_WithDefault([1])) != hash_value(_WithDefault([2]))


def test_numpy_arrays_and_scalars() -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert hash_value(a) == hash_value(a.copy())
    assert hash_value(a) == hash_value(np.asfortranarray(a))
    assert hash_value(a) != hash_value(a.reshape(4, 3))
    assert hash_value(a) != hash_value(a.astype(np.int32))
    b = a.copy()
    b[0, 0] = 99
    assert hash_value(a) != hash_value(b)
    assert hash_value(np.int64(3)) != hash_value(np.int32(3))
    assert hash_value(np.float64(1.5)) != hash_value(1.5)
    assert hash_value(np.array(["a", None], dtype=object)) != hash_value(
        np.array(["a", "b"], dtype=object)
    )
    assert hash_value(np.array(["2024-01-01"], dtype="datetime64[D]")) != hash_value(
        np.array(["2024-01-02"], dtype="datetime64[D]")
    )


def test_pandas_frames_and_series() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert hash_value(frame) == hash_value(frame.copy())
    assert hash_value(frame) != hash_value(frame.rename(columns={"b": "c"}))
    assert hash_value(frame) != hash_value(frame.assign(a=[1, 2, 4]))
    assert hash_value(frame) != hash_value(frame.set_index("b"))
    assert hash_value(frame["a"]) != hash_value(frame["a"].rename("z"))
    assert hash_value(frame) != hash_value(frame.astype({"a": "float64"}))
