"""The files ``ledgerflow init`` writes, as text templates (``str.format`` fields)."""

from __future__ import annotations

CONFIG = """\
# ledgerflow project configuration. Relative paths are relative to this file.
# ${{VAR}} and ${{VAR:-default}} read environment variables; `!include FILE` reads another
# YAML file (relative to the including one).

databases:
  # The ledger (runs, task calls, values) and the plugins' tables live in "default".
  default:
    dialect: sqlite
    path: ledgerflow.db

  # Another database (a "bind"); a model goes there with `__bind_key__ = "catalog"`.
  # On PostgreSQL the admin role runs migrations (layout), the user role only reads and
  # writes rows. Keep passwords out of this file with ${{VAR}}:
  # catalog:
  #   dialect: postgresql
  #   address: localhost:5432
  #   database: catalog
  #   admin: catalog_admin:${{CATALOG_ADMIN_PASSWORD}}
  #   user: catalog_user:${{CATALOG_USER_PASSWORD}}
  # or keep the entry in its own file:
  # catalog: !include databases/catalog.yml

# Python packages whose models and migrations belong to this project.
plugins:
  - {plugin}

# How tasks run: local | threads | processes | dask
# executor:
#   kind: processes
#   workers: 4

# Task results larger than inline_max_bytes go to a value store: by default the ledger
# database itself on PostgreSQL, .ledgerflow/values on SQLite; or a shared folder
# (file:///shared/path) or an object store (s3://bucket/prefix, pip install 'ledgerflow[s3]').
# values:
#   inline_max_bytes: 1048576
#   store: .ledgerflow/values

# Set auto_migrate to true to upgrade the databases (never downgrade) before a run
# instead of stopping with the command to run.
# auto_migrate: false
"""

PLUGIN_INIT = '''\
"""The {plugin} plugin: its models live in models.py, its migrations in migrations/."""
'''

MODELS = '''\
"""Tables of the {plugin} plugin.

migrations/ holds the revision that creates these tables as they are written here, so
`ledgerflow db upgrade` creates them. After changing a model, write a migration and apply it:

    ledgerflow db make-migrations --plugin {plugin} -m "describe the change"
    ledgerflow db upgrade
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from ledgerflow.db import Model


class Measurement(Model):
    """One measured value of a sample (table "measurement")."""

    id: Mapped[int] = mapped_column(primary_key=True)
    sample: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[str] = mapped_column(String(50))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(20))
    measured_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (UniqueConstraint("sample", "quantity"),)
'''

#: The plugin's first revision: the table of MODELS, exactly (``db check`` is in sync).
FIRST_MIGRATION = '''\
"""add measurement

Revision ID: {revision}
Revises:
Create Date: {created}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = None
branch_labels = ("{plugin}",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "measurement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.String(length=50), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=True),
        sa.Column(
            "measured_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurement")),
        sa.UniqueConstraint("sample", "quantity", name=op.f("uq_measurement_sample_quantity")),
    )


def downgrade() -> None:
    op.drop_table("measurement")
'''

NEXT_STEPS = """\
Next steps:
{cd}  ledgerflow db upgrade                    # the ledger's tables and the plugin's measurement
  ledgerflow db check                      # models and database agree
  ledgerflow config show                   # the effective configuration
After editing {plugin}/models.py:
  ledgerflow db make-migrations --plugin {plugin} -m "describe the change"
  ledgerflow db upgrade
"""
