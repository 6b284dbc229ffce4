"""share the ledger

What a team sharing one ledger needs:

- ``writer`` on runs, values and cache entries: the database role (PostgreSQL) or the
  operating-system user (SQLite) that wrote the row, so a reader can decide whose pickles
  it trusts and the user role can update only its own runs. On PostgreSQL a trigger sets
  it to ``current_user`` on insert and keeps it on update, whatever the client sent, so no
  role can write a row in another's name;
- ``lf_value_chunk``: large values kept in the ledger database itself, in ordered chunks;
- ``lf_claim``: leases so that each uncached call is computed by one run at a time, with a
  fencing number that grows each time a call changes hands;
- ``lf_written``: the rows a task wrote through its session, so a cache hit is valid only
  while those rows still exist.

Revision ID: b3c8e1f47a20
Revises: ae4504db7692
Create Date: 2026-12-01 05:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "b3c8e1f47a20"
down_revision = "ae4504db7692"
branch_labels = None
depends_on = None


WRITTEN_BY = ("lf_run", "lf_value", "lf_cache_entry")

SET_WRITER = """
CREATE OR REPLACE FUNCTION lf_set_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.writer := current_user;
    ELSE
        NEW.writer := OLD.writer;
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    for table in WRITTEN_BY:
        op.add_column(table, sa.Column("writer", sa.String(length=255), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SET_WRITER)
        for table in WRITTEN_BY:
            op.execute(
                f"CREATE TRIGGER {table}_writer BEFORE INSERT OR UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION lf_set_writer()"
            )

    op.create_table(
        "lf_value_chunk",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", "seq", name=op.f("pk_lf_value_chunk")),
    )
    op.create_table(
        "lf_claim",
        sa.Column("task_hash", sa.String(length=40), nullable=False),
        sa.Column("args_hash", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("task_hash", "args_hash", name=op.f("pk_lf_claim")),
    )
    op.create_index("ix_lf_claim_run_id", "lf_claim", ["run_id"])
    op.create_table(
        "lf_written",
        sa.Column("call_hash", sa.String(length=40), nullable=False),
        sa.Column("bind", sa.String(length=64), nullable=False),
        sa.Column("table_name", sa.String(length=255), nullable=False),
        sa.Column("row_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "call_hash", "bind", "table_name", "row_key", name=op.f("pk_lf_written")
        ),
    )


def downgrade() -> None:
    op.drop_table("lf_written")
    op.drop_table("lf_claim")
    op.drop_table("lf_value_chunk")
    if op.get_bind().dialect.name == "postgresql":
        for table in WRITTEN_BY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_writer ON {table}")
        op.execute("DROP FUNCTION IF EXISTS lf_set_writer()")
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table copy, so the views stay
    for table in WRITTEN_BY:
        op.drop_column(table, "writer")
