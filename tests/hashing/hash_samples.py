"""Values hashed both by the test process and by a child Python process."""

from __future__ import annotations

import datetime
import enum
import json
import sys
import uuid
from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


@dataclass
class Sample:
    name: str
    reads: list[int]
    tags: frozenset[str]


class Plain:
    def __init__(self, a: object, b: object) -> None:
        self.a = a
        self.b = b


Pair = namedtuple("Pair", "left right")


def samples() -> dict[str, object]:
    """Name -> value; sets of strings iterate in a different order under another hash seed."""
    return {
        "none": None,
        "true": True,
        "int": 1,
        "big_int": 10**5000,
        "negative": -(2**70),
        "float": 1.5,
        "neg_zero": -0.0,
        "nan": float("nan"),
        "complex": 1 + 2j,
        "str": "héllo\u2028",
        "surrogate": "\ud800",
        "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"),
        "list": [1, "a", [2.0, None]],
        "tuple": (1, "a"),
        "dict": {"b": 1, "a": [1, 2], 3: "three", (1, 2): {"x"}},
        "set_of_str": {f"sample_{i}" for i in range(50)},
        "frozenset": frozenset({"a", "b", ("c", 1)}),
        "nested": {"samples": [{"id": i, "tags": {"x", "y", str(i)}} for i in range(5)]},
        "dataclass": Sample("s1", [1, 2], frozenset({"p", "q"})),
        "plain_object": Plain({"k", "l"}, [1]),
        "enum": Colour.RED,
        "path": Path("results/x.vcf"),
        "pure_path": PurePosixPath("/data/in.fastq"),
        "datetime": datetime.datetime(2024, 5, 1, 12, 30, 1, 5, tzinfo=datetime.UTC),
        "date": datetime.date(2024, 5, 1),
        "time": datetime.time(12, 30),
        "timedelta": datetime.timedelta(days=1, seconds=3),
        "decimal": Decimal("1.10"),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "ordered_dict": OrderedDict(a=1, b=2),
        "namedtuple": Pair(1, 2),
        "type": Sample,
    }


def dump() -> None:
    """Print the hashes as JSON (run in a child process by the stability test)."""
    from ledgerflow.hashing import hash_value

    json.dump({name: hash_value(value) for name, value in samples().items()}, sys.stdout)
    json.dump(sorted(m for m in ("numpy", "pandas") if m in sys.modules), sys.stderr)
