"""Fingerprints for pandas frames, series and indexes; imported only once one is hashed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ledgerflow.hashing._numpy import array_digest
from ledgerflow.hashing.canonical import fingerprint, hash_value
from ledgerflow.hashing.digest import combine


def _values_digest(values: Any) -> str:
    """Hash of one column or index: its dtype and its values."""
    data = values.to_numpy()
    if not isinstance(data, np.ndarray) or data.dtype.hasobject:
        content = hash_value(list(data))
    else:
        content = array_digest(data)
    return combine(str(values.dtype), content)


@fingerprint.register(pd.Index)
def _index(index: pd.Index) -> str:
    return combine("pandas.Index", hash_value(list(index.names)), _values_digest(index))


@fingerprint.register(pd.Series)
def _series(series: pd.Series) -> str:
    return combine(
        "pandas.Series", hash_value(series.name), _index(series.index), _values_digest(series)
    )


@fingerprint.register(pd.DataFrame)
def _frame(frame: pd.DataFrame) -> str:
    columns = [_values_digest(frame.iloc[:, i]) for i in range(frame.shape[1])]
    return combine("pandas.DataFrame", _index(frame.columns), _index(frame.index), *columns)
