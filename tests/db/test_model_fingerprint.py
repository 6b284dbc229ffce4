"""Mapped rows used as task arguments hash by content, stably across processes."""

import subprocess
import sys

from ledgerflow.hashing import hash_value

SOURCE = """
from sqlalchemy import Column, Integer, String
from ledgerflow.db import Model

class Sample(Model):
    id = Column(Integer, primary_key=True)
    name = Column(String)
"""


def _sample_class():
    namespace: dict = {"__name__": "fingerprint_models"}
    exec(SOURCE, namespace)
    return namespace["Sample"]


def test_model_rows_hash_by_type_and_columns(fresh_models):
    sample = _sample_class()
    a, same, other = sample(id=1, name="a"), sample(id=1, name="a"), sample(id=1, name="b")
    assert hash_value(a) == hash_value(same)
    assert hash_value(a) != hash_value(other)


def test_model_row_hash_is_the_same_in_another_process(fresh_models):
    mine = hash_value(_sample_class()(id=7, name="x"))
    code = SOURCE.replace("from ledgerflow.db import Model", "from ledgerflow.db import Model\n__name__ = 'fingerprint_models'")
    child = subprocess.run(
        [sys.executable, "-c", code + "\nfrom ledgerflow.hashing import hash_value\n"
         "print(hash_value(Sample(id=7, name='x')))"],
        capture_output=True, text=True, check=True,
    )
    assert child.stdout.strip() == mine
