"""index arguments hashes

Lookups by arguments alone (downstream dataflow, ``query --file``) use these indexes.

Revision ID: ae4504db7692
Revises: f8fc3916e6b0
Create Date: 2026-11-22 21:56:45.988440
"""

from alembic import op

revision = "ae4504db7692"
down_revision = "f8fc3916e6b0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_lf_call_args_hash", "lf_call", ["args_hash"])
    op.create_index("ix_lf_task_run_args_hash", "lf_task_run", ["args_hash"])


def downgrade() -> None:
    op.drop_index("ix_lf_task_run_args_hash", table_name="lf_task_run")
    op.drop_index("ix_lf_call_args_hash", table_name="lf_call")
