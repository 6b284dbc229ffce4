"""encode/decode: exact round trips, safe formats for plain data, previews, trusted loading."""

from __future__ import annotations

import datetime
import math
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledgerflow.errors import IntegrityError, SerializationError, UntrustedValueError
from ledgerflow.hashing import hash_value
from ledgerflow.values import File, Trust, decode, digest, encode, load_stored, preview
from ledgerflow.values.signing import sign


@dataclass
class Result:
    name: str
    scores: tuple[float, ...]


ROUND_TRIPS = [
    None,
    True,
    0,
    -(2**63),
    2**64,
    10**5000,
    1.5,
    -0.0,
    "héllo \ud800",
    [1, [2, "x"], {"a": None}],
    {"b": 1, "a": 2},
    (1, 2),
    [(1,)],
    {1: "one"},
    {"a": {1, 2}},
    b"\x00bytes",
    Result("r", (1.0, 2.0)),
    File("results/x.vcf"),
    datetime.date(2024, 1, 1),
    [True, 1, 1.0],
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_value_and_types(value: object) -> None:
    encoded = encode(value)
    back = decode(encoded.format, encoded.data)
    assert back == value
    assert type(back) is type(value)
    assert encoded.size == len(encoded.data)
    if isinstance(value, list):
        assert [type(v) for v in back] == [type(v) for v in value]
    if isinstance(value, dict):
        assert list(back) == list(value)


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        (1, "json"),
        ("s", "json"),
        ([1, 2.5, None, True], "json"),
        ({"a": [1, {"b": "c"}]}, "json"),
        ((1, 2), "tjson"),
        ({1: 2}, "tjson"),
        ([{"a": (1,)}], "tjson"),
        (float("nan"), "tjson"),
        (2**64, "tjson"),
        ({"$tuple": [1]}, "json"),
        ([{"$tuple": [1]}, (1,)], "tjson"),
        (b"\x00", "tjson"),
        ({frozenset({1}): {2, 3}}, "tjson"),
        ([1 + 2j, {"k": None}], "tjson"),
        (Result("r", ()), "pickle"),
        (datetime.date(2024, 1, 1), "pickle"),
        ([Result("r", ())], "pickle"),
    ],
    ids=repr,
)
def test_plain_data_is_never_pickled(value: object, fmt: str) -> None:
    encoded = encode(value)
    assert encoded.format == fmt
    back = decode(encoded.format, encoded.data)
    assert hash_value(back) == hash_value(value)
    assert type(back) is type(value) and (back == value or back != back)  # nan != nan


def test_arrays_and_frames_use_formats_that_load_without_code() -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None], "c": [0.5, float("nan")]})
    frame.index = pd.Index([10, 20], name="id")
    arrays = np.arange(12, dtype=np.int32).reshape(3, 4)
    cases = [
        (arrays, "npy"),
        (np.asfortranarray(arrays), "npy"),
        (frame, "parquet"),
        ({"x": arrays, "f": frame}, "tjson"),
        (np.array([1, "a"], dtype=object), "pickle"),
        (np.ma.masked_array([1, 2], mask=[0, 1]), "pickle"),
    ]
    for value, fmt in cases:
        encoded = encode(value)
        assert encoded.format == fmt, (value, encoded.format)
        assert hash_value(decode(encoded.format, encoded.data)) == hash_value(value)
    assert b"NUMPY" in encode(arrays).data[:8] and encode(frame).data[:4] == b"PAR1"


def test_json_is_compact() -> None:
    assert encode({"a": [1, 2]}).data == b'{"a":[1,2]}'


def test_nan_round_trips_through_tagged_json() -> None:
    encoded = encode(float("nan"))
    back = decode(encoded.format, encoded.data)
    assert math.isnan(back)


def test_shared_lists_come_back_as_equal_copies() -> None:
    shared = [1]
    encoded = encode([shared, shared])
    back = decode(encoded.format, encoded.data)
    assert encoded.format == "tjson" and back == [[1], [1]] and back[0] is not back[1]


def test_type_name_and_preview() -> None:
    assert encode(1).type_name == "builtins.int"
    assert encode(File("out/a.vcf")).type_name == "ledgerflow.values.File"
    assert encode(Result("r", ())).type_name == f"{__name__}.Result"
    assert encode(File("out/a.vcf")).preview == "File('out/a.vcf')"
    assert encode(list(range(0, 1000, 10))).preview.startswith("[0, 10, 20, ")
    assert encode(list(range(0, 1000, 10))).preview.endswith(", … (100 items)]")


@pytest.mark.parametrize(
    "value",
    [
        list(range(10**4)),
        "x" * 10**4,
        {str(i): [i] * 50 for i in range(500)},
        b"\x00" * 10**4,
        [[[[[[1]]]]]] * 100,
        {frozenset({1}): (1,) * 300},
    ],
    ids=["list", "str", "dict", "bytes", "nested", "odd"],
)
def test_preview_is_short(value: object) -> None:
    text = preview(value)
    assert 0 < len(text) <= 120


def test_preview_of_small_values_is_their_repr() -> None:
    assert preview((1,)) == "(1,)"
    assert preview({"a": [1, 2]}) == "{'a': [1, 2]}"
    assert preview(set()) == "set()"
    assert preview("x" * 300).endswith("…' (300 chars)")


def test_preview_of_numpy_and_pandas() -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    assert preview(pd.DataFrame({"a": range(100), "b": 0, "c": 1})) == "<DataFrame 100×3>"
    assert preview(np.zeros((2, 3), dtype=np.int64)) == "<ndarray int64 2×3>"
    encoded = encode(np.arange(5))
    assert (decode(encoded.format, encoded.data) == np.arange(5)).all()


def test_unpicklable_value_names_its_type() -> None:
    with pytest.raises(SerializationError, match="builtins.dict.*lock"):
        encode({"lock": threading.Lock()})
    with pytest.raises(SerializationError, match="_thread.lock"):
        encode(threading.Lock())


def test_decode_errors() -> None:
    with pytest.raises(IntegrityError, match="format"):
        decode("yaml", b"a: 1")
    with pytest.raises(IntegrityError, match="corrupt"):
        decode("json", b"{")
    with pytest.raises(SerializationError, match="cannot load"):
        decode("pickle", pickle.dumps(Result("r", ())).replace(b"Result", b"Absent"))
    with pytest.raises(IntegrityError, match="unknown tag"):
        decode("tjson", b'{"$eval":"print(1)"}')
    with pytest.raises(IntegrityError, match="corrupt"):
        decode("npy", b"\x93NUMPY garbage")


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.write_text, (Path("should-not-exist"), "pwned"))  # type: ignore[return-value]


def test_pickles_load_only_from_trusted_writers_with_intact_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    trust = Trust(frozenset({"alice"}))
    encoded = encode(Result("r", (1.0,)))
    good = digest(encoded.data)
    assert load_stored("pickle", encoded.data, good, "alice", trust) == Result("r", (1.0,))
    evil = pickle.dumps(_Boom())
    middle = len(encoded.data) // 2
    tampered = (
        encoded.data[:middle] + bytes([encoded.data[middle] ^ 1]) + encoded.data[middle + 1 :]
    )
    refusals = [
        (evil, digest(evil), "mallory", UntrustedValueError, "'mallory', who is not in cache.trust"),
        (evil, digest(evil), None, UntrustedValueError, "unknown writer"),
        (evil, good, "alice", IntegrityError, "bytes changed"),
        (tampered, good, "alice", IntegrityError, "bytes changed"),
        (evil, None, "alice", IntegrityError, "no digest"),
        (evil, sign(evil, b"k" * 32), "alice", UntrustedValueError, "earlier ledgerflow"),
    ]
    for data, signature, writer, error, text in refusals:
        with pytest.raises(error, match=text):
            load_stored("pickle", data, signature, writer, trust)
    assert not (tmp_path / "should-not-exist").exists()


def test_a_legacy_signed_pickle_loads_with_the_checkouts_old_key() -> None:
    key = b"k" * 32
    encoded = encode(Result("r", (1.0,)))
    trust = Trust(frozenset(), legacy_key=key)
    signature = sign(encoded.data, key)
    assert load_stored("pickle", encoded.data, signature, None, trust) == Result("r", (1.0,))
    with pytest.raises(UntrustedValueError):
        load_stored("pickle", encoded.data, signature, None, Trust(frozenset(), b"o" * 32))
