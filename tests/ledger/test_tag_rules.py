"""One set of tag rules for tagging a run, tagging any record and filtering by tag."""

from __future__ import annotations

import pytest

import ledgerflow
from ledgerflow.config.settings import Settings
from ledgerflow.errors import UsageError
from ledgerflow.ledger.tags import parse_tags, run_tags
from ledgerflow.provenance.ledger import Ledger
from ledgerflow.provenance.query import parse_tags as parse_filters

BAD_KEYS = ["a b", "", "-x", "é", "k" * 256]


@ledgerflow.task
def one() -> int:
    return 1


def test_forms_and_rules() -> None:
    assert parse_tags({"sample": "S4", "run.batch-2": 3}) == [("sample", "S4"), ("run.batch-2", "3")]
    assert parse_tags(["a=1", ("b", "2")]) == [("a", "1"), ("b", "2")]
    assert parse_tags(("a=1", "b=2")) == [("a", "1"), ("b", "2")]
    assert parse_tags(("env", "prod")) == [("env", "prod")]
    assert parse_tags(" k = v ") == [("k", "v")]
    assert parse_filters(["env", "qc=pass"]) == [("env", None), ("qc", "pass")]
    assert run_tags(["a=1", "a=1"]) == {"a": "1"}
    with pytest.raises(UsageError, match="given twice"):
        run_tags(["a=1", "a=2"])
    with pytest.raises(UsageError, match="is not key=value"):
        parse_tags("novalue")
    with pytest.raises(UsageError, match="longer than 255"):
        parse_tags({"k": "x" * 256})
    for key in BAD_KEYS:
        with pytest.raises(UsageError):
            parse_tags({key: "v"})
        with pytest.raises(UsageError):
            parse_filters(key or "=v")


def test_run_record_and_filter_refuse_the_same_keys(ledger_settings: Settings) -> None:
    for key in BAD_KEYS:
        with pytest.raises(UsageError):
            ledgerflow.execute(one(), settings=ledger_settings, tags={key: "v"})
    result = ledgerflow.execute(one(), settings=ledger_settings, tags={"batch.2-a": "x"})
    with Ledger.open(ledger_settings) as book:
        assert [r.id for r in book.runs(tag="batch.2-a=x")] == [result.run_id]
        for key in BAD_KEYS:
            with pytest.raises(UsageError):
                book.tag(result.run_id, {key: "v"})
            with pytest.raises(UsageError):
                book.runs(tag=key or "=v")
        assert [(t.key, t.value) for t in book.tags(result.run_id)] == [("batch.2-a", "x")]
