"""create the provenance views

The SQL views lf_latest_task_run, lf_file_origin and lf_failed_task_run (documented in
ledgerflow.provenance.views and docs/schema.md), frozen as they were at this revision: a
later change to a view is a new revision that drops and re-creates it.

SQLite note: a later revision that rebuilds one of the tables these views read (batch
mode) must drop the views first and re-create them after, or SQLite refuses the rename.

Revision ID: f8fc3916e6b0
Revises: d9532b4114de
Create Date: 2026-11-22 21:00:00
"""

from alembic import op


revision = 'f8fc3916e6b0'
down_revision = 'd9532b4114de'
branch_labels = None
depends_on = None

VIEWS = {
    "lf_latest_task_run": """
SELECT task_hash, args_hash, call_hash, task_name, task_run_id, run_id, status, attempt,
       started_at, ended_at, duration, value_hash, cached_from, run_started_at
FROM (
    SELECT tr.task_hash, tr.args_hash, tr.call_hash, tr.task_name, tr.id AS task_run_id,
           tr.run_id, tr.status, tr.attempt, tr.started_at, tr.ended_at, tr.duration,
           tr.value_hash, tr.cached_from, r.started_at AS run_started_at,
           ROW_NUMBER() OVER (
               PARTITION BY tr.task_hash, tr.args_hash
               ORDER BY r.started_at DESC, tr.attempt DESC, tr.id DESC
           ) AS recency
    FROM lf_task_run tr
    JOIN lf_run r ON r.id = tr.run_id
) ranked
WHERE recency = 1
""",
    "lf_file_origin": """
SELECT f.hash AS file_hash, f.path, f.content_hash, f.size, f.mtime,
       tr.id AS task_run_id, tr.task_name, tr.call_hash, tr.ended_at AS produced_at,
       r.id AS run_id, r.status AS run_status, r.started_at AS run_started_at
FROM lf_file f
JOIN lf_call c ON c.value_hash = f.hash
JOIN lf_task_run tr ON tr.call_hash = c.hash AND COALESCE(tr.status, '') = 'done'
JOIN lf_run r ON r.id = tr.run_id
WHERE NOT EXISTS (
    SELECT 1 FROM lf_call_edge ce JOIN lf_call child ON child.hash = ce.child_hash
    WHERE ce.parent_hash = c.hash AND child.value_hash = c.value_hash
)
UNION ALL
SELECT f.hash AS file_hash, f.path, f.content_hash, f.size, f.mtime,
       tr.id AS task_run_id, tr.task_name, tr.call_hash, tr.ended_at AS produced_at,
       r.id AS run_id, r.status AS run_status, r.started_at AS run_started_at
FROM lf_file f
JOIN lf_value_edge e ON e.child_hash = f.hash
JOIN lf_call c ON c.value_hash = e.parent_hash
JOIN lf_task_run tr ON tr.call_hash = c.hash AND COALESCE(tr.status, '') = 'done'
JOIN lf_run r ON r.id = tr.run_id
WHERE NOT EXISTS (
    SELECT 1 FROM lf_call_edge ce JOIN lf_call child ON child.hash = ce.child_hash
    WHERE ce.parent_hash = c.hash AND child.value_hash = c.value_hash
)
  AND NOT EXISTS (
    SELECT 1 FROM lf_call c2
    JOIN lf_task_run t2 ON t2.call_hash = c2.hash AND COALESCE(t2.status, '') = 'done'
    WHERE c2.value_hash = f.hash
)
UNION ALL
SELECT f.hash AS file_hash, f.path, f.content_hash, f.size, f.mtime,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM lf_file f
WHERE NOT EXISTS (
    SELECT 1 FROM lf_call c2
    JOIN lf_task_run t2 ON t2.call_hash = c2.hash AND COALESCE(t2.status, '') = 'done'
    WHERE c2.value_hash = f.hash
)
  AND NOT EXISTS (
    SELECT 1 FROM lf_value_edge e2
    JOIN lf_call c2 ON c2.value_hash = e2.parent_hash
    JOIN lf_task_run t2 ON t2.call_hash = c2.hash AND COALESCE(t2.status, '') = 'done'
    WHERE e2.child_hash = f.hash
)
""",
    "lf_failed_task_run": """
SELECT tr.id AS task_run_id, tr.run_id, tr.task_name, tr.task_hash, tr.args_hash, tr.attempt,
       tr.worker, tr.exception_type, tr.exception_message, tr.traceback, tr.started_at,
       tr.ended_at, tr.duration, r.entry_task, r.status AS run_status,
       r.started_at AS run_started_at, r.host, r."user" AS run_user
FROM lf_task_run tr
JOIN lf_run r ON r.id = tr.run_id
WHERE tr.status = 'failed'
""",
}


def upgrade() -> None:
    for name, select in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS\n{select.strip()}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
