"""cache entry versions take the database's clock

Which version of a call's cache entry a lookup uses is decided by ``created_at``, the newest
first. The writing client used to stamp it, so a host whose clock runs behind could record a
``--rerun`` that an older result, stamped later by another host, still hid. On PostgreSQL a
``BEFORE INSERT`` trigger now stamps every new version with the server's clock
(``clock_timestamp()``, which advances between the rows of one statement) and, should that
not be later than every version the key already has (two rows in the same microsecond, or
the server's clock set back), one microsecond after the newest of them: a version is always
newer than the versions recorded before it.

A session that imports records keeping their own time sets ``ledgerflow.keep_time`` to
``on`` in its transaction: its rows keep the ``created_at`` they come with, so importing the
same file again meets the same keys and adds nothing. SQLite has one host's clock for every
writer: nothing changes there.

Revision ID: f3a6c2d8b951
Revises: e5d1b7c93a62
Create Date: 2026-12-01 07:30:00.000000
"""

from alembic import op

revision = "f3a6c2d8b951"
down_revision = "e5d1b7c93a62"
branch_labels = None
depends_on = None

STAMP = """
CREATE FUNCTION lf_stamp_cache_entry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    newest timestamptz;
BEGIN
    IF current_setting('ledgerflow.keep_time', true) = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.created_at := clock_timestamp();
    SELECT max(c.created_at) INTO newest FROM lf_cache_entry c
    WHERE c.task_hash = NEW.task_hash AND c.args_hash = NEW.args_hash;
    IF newest IS NOT NULL AND newest >= NEW.created_at THEN
        NEW.created_at := newest + interval '1 microsecond';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(STAMP)
    op.execute(
        "CREATE TRIGGER lf_cache_entry_stamp BEFORE INSERT ON lf_cache_entry "
        "FOR EACH ROW EXECUTE FUNCTION lf_stamp_cache_entry()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER lf_cache_entry_stamp ON lf_cache_entry")
    op.execute("DROP FUNCTION lf_stamp_cache_entry()")
