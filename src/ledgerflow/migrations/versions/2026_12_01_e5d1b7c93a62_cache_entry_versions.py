"""cache entries are versions

A cache entry is no longer one row per ``(task_hash, args_hash)`` that only its writer (or
the admin) could replace: every result recorded for a call adds a row, and a lookup uses the
newest one that passes its checks. The primary key becomes ``(task_hash, args_hash,
created_at)``, which also serves "the entries of these keys, newest first". The user role
keeps INSERT only on ``lf_cache_entry``: a rerun adds a newer entry instead of rewriting
the old one, and the old one stays as history.

Downgrading keeps the newest entry of each key and drops the others.

Revision ID: e5d1b7c93a62
Revises: c7e2a9d40f15
Create Date: 2026-12-01 07:10:00.000000
"""

from alembic import op

revision = "e5d1b7c93a62"
down_revision = "c7e2a9d40f15"
branch_labels = None
depends_on = None

PK = "pk_lf_cache_entry"


def _primary_key(columns: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(PK, "lf_cache_entry", type_="primary")
        op.create_primary_key(PK, "lf_cache_entry", columns)
        return
    with op.batch_alter_table("lf_cache_entry", recreate="always") as batch:
        batch.drop_constraint(PK, type_="primary")
        batch.create_primary_key(PK, columns)


def upgrade() -> None:
    _primary_key(["task_hash", "args_hash", "created_at"])


def downgrade() -> None:
    op.execute(
        "DELETE FROM lf_cache_entry WHERE EXISTS (SELECT 1 FROM lf_cache_entry n "
        "WHERE n.task_hash = lf_cache_entry.task_hash AND n.args_hash = lf_cache_entry.args_hash "
        "AND n.created_at > lf_cache_entry.created_at)"
    )
    _primary_key(["task_hash", "args_hash"])
