"""Tables of the data_reduction plugin.

After changing a model, write a migration and apply it (from examples/):

    ledgerflow db make-migrations --plugin tuto.data_reduction -m "describe the change"
    ledgerflow db upgrade
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, UniqueConstraint

from ledgerflow.db import Model


class ComputationResult(Model):
    """The result of one expensive computation (table "computation_result")."""

    id_computation_result = Column(Integer, primary_key=True)
    input_value = Column(Integer, nullable=False)
    multiplier = Column(Integer, nullable=False)
    result = Column(Integer, nullable=False)

    __table_args__ = (UniqueConstraint("input_value", "multiplier"),)
