"""append-only history

On PostgreSQL, the server keeps the user role from rewriting what others recorded:

- row-level security on ``lf_run`` (a role updates only the runs it started: ``writer =
  current_user``, set by the ``lf_set_writer`` trigger), on ``lf_task_run`` and
  ``lf_log_record`` (rows are added to, and task runs updated in, only the role's own
  runs) and on ``lf_tag`` (a role removes the tags it added, and any tag of its own runs
  and their task runs). The admin owns the tables and is not subject to these policies;
- ``writer`` on ``lf_tag``, set like the other writers by the ``lf_set_writer`` trigger
  (both dialects get the column; SQLite leaves it to the client);
- ``lf_set_writer`` lets the tables' owner (the admin) keep the writer a row comes with when
  its transaction sets ``ledgerflow.keep_writer`` to ``on``: an import by the admin then
  leaves the writer of foreign records unknown (NULL) instead of making them the admin's,
  whose pickles everyone trusts. Any other role still writes as itself;
- ``lf_reap_stale_runs(stale_after)``: a ``SECURITY DEFINER`` function owned by the admin
  that marks ``interrupted`` the running runs (anyone's) whose heartbeat is older than
  ``stale_after`` seconds (never less than ten) by the database's clock, with their
  unfinished task runs; it returns their ids.

What each role may do per table (the grants) is applied after each migration by
``ledgerflow.migrations.grants``. SQLite has no roles: nothing changes there.

Revision ID: c7e2a9d40f15
Revises: b3c8e1f47a20
Create Date: 2026-12-01 06:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "c7e2a9d40f15"
down_revision = "b3c8e1f47a20"
branch_labels = None
depends_on = None

OWN_RUN = "EXISTS (SELECT 1 FROM lf_run r WHERE r.id = {table}.run_id AND r.writer = current_user)"
OWN_TAG = (
    "writer = current_user "
    "OR (entity_kind = 'run' AND EXISTS (SELECT 1 FROM lf_run r "
    "WHERE r.id = lf_tag.entity_id AND r.writer = current_user)) "
    "OR (entity_kind = 'task_run' AND EXISTS (SELECT 1 FROM lf_task_run t "
    "JOIN lf_run r ON r.id = t.run_id WHERE t.id = lf_tag.entity_id AND r.writer = current_user))"
)

#: (table, policy, command, USING, WITH CHECK)
POLICIES = (
    ("lf_run", "read", "SELECT", "true", None),
    ("lf_run", "add", "INSERT", None, "writer = current_user"),
    ("lf_run", "update_own", "UPDATE", "writer = current_user", "writer = current_user"),
    ("lf_task_run", "read", "SELECT", "true", None),
    ("lf_task_run", "add_to_own_run", "INSERT", None, OWN_RUN.format(table="lf_task_run")),
    (
        "lf_task_run", "update_in_own_run", "UPDATE",
        OWN_RUN.format(table="lf_task_run"), OWN_RUN.format(table="lf_task_run"),
    ),
    ("lf_log_record", "read", "SELECT", "true", None),
    ("lf_log_record", "add_to_own_run", "INSERT", None, OWN_RUN.format(table="lf_log_record")),
    ("lf_tag", "read", "SELECT", "true", None),
    ("lf_tag", "add", "INSERT", None, "true"),
    ("lf_tag", "remove_from_own_run", "DELETE", OWN_TAG, None),
)  # fmt: skip

SET_WRITER = """
CREATE OR REPLACE FUNCTION lf_set_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF current_setting('ledgerflow.keep_writer', true) = 'on' THEN
            IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                           'USAGE') THEN
                RETURN NEW;
            END IF;
        END IF;
        NEW.writer := current_user;
    ELSE
        NEW.writer := OLD.writer;
    END IF;
    RETURN NEW;
END
$$
"""

SET_WRITER_BEFORE = """
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

SECURED = tuple(dict.fromkeys(table for table, *_ in POLICIES))

REAP = """
CREATE FUNCTION lf_reap_stale_runs(stale_after double precision)
RETURNS SETOF text
LANGUAGE sql
SECURITY DEFINER
SET search_path = {schema}, pg_temp
AS $$
    WITH dead AS (
        UPDATE lf_run SET status = 'interrupted', ended_at = now()
        WHERE status = 'running'
          AND COALESCE(heartbeat_at, started_at)
              < now() - make_interval(secs => GREATEST(COALESCE(stale_after, 0), 10))
        RETURNING id
    ), tasks AS (
        UPDATE lf_task_run t SET status = 'interrupted', ended_at = now()
        FROM dead WHERE t.run_id = dead.id AND t.status IN ('pending', 'running')
        RETURNING t.id
    )
    SELECT id::text FROM dead ORDER BY id
$$
"""


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.add_column("lf_tag", sa.Column("writer", sa.String(length=255), nullable=True))
    if not _postgres():
        return
    op.execute(SET_WRITER)
    op.execute(
        "CREATE TRIGGER lf_tag_writer BEFORE INSERT OR UPDATE ON lf_tag "
        "FOR EACH ROW EXECUTE FUNCTION lf_set_writer()"
    )
    for table in SECURED:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    for table, name, command, using, check in POLICIES:
        clauses = f" USING ({using})" if using else ""
        clauses += f" WITH CHECK ({check})" if check else ""
        op.execute(f"CREATE POLICY {table}_{name} ON {table} FOR {command}{clauses}")
    bind = op.get_bind()
    schema = bind.exec_driver_sql("SELECT current_schema()").scalar_one()
    op.execute(REAP.format(schema=bind.dialect.identifier_preparer.quote(schema)))
    op.execute("REVOKE ALL ON FUNCTION lf_reap_stale_runs(double precision) FROM PUBLIC")


def downgrade() -> None:
    if _postgres():
        op.execute("DROP FUNCTION IF EXISTS lf_reap_stale_runs(double precision)")
        for table, name, *_ in reversed(POLICIES):
            op.execute(f"DROP POLICY IF EXISTS {table}_{name} ON {table}")
        for table in SECURED:
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute("DROP TRIGGER IF EXISTS lf_tag_writer ON lf_tag")
        op.execute(SET_WRITER_BEFORE)
    op.drop_column("lf_tag", "writer")
