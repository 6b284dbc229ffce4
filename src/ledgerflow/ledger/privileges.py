"""What the user role may do to each ledger table on PostgreSQL: the one definition.

History is append-only for the user role (the role every pipeline runs with). It may read
everything and add rows to every ledger table; the few changes it may make are limited by
row-level security (migration ``c7e2a9d40f15``) to the runs it started:

========================  ==============================================================
``lf_run``                add; update the runs it started (``writer = current_user``)
``lf_task_run``           add to, and update in, the runs it started
``lf_log_record``         add to the runs it started
``lf_tag``                add to any record; remove the tags it added, and any tag of its
                          own runs and their task runs
``lf_claim``              add, update, remove (leases pass from run to run)
every other ``lf_`` table add only (values, cache entries, calls, files, chunks, ...)
``lf_`` views             read only
========================  ==============================================================

Nobody but the admin (who owns the tables) deletes or rewrites history, values or cache
entries, or truncates, alters or drops a table: ``prune``, ``cache clear`` and an
``import`` that would overwrite are admin operations. Runs whose process died are marked
``interrupted`` through ``lf_reap_stale_runs``, a function that runs with the admin's
rights. :mod:`ledgerflow.migrations.grants` applies this after each migration.
"""

from __future__ import annotations

#: Rights of the user role on each ledger table beyond SELECT (and INSERT, which every
#: ledger table gives). Row-level security narrows these to the role's own runs.
EXTRA_RIGHTS: dict[str, tuple[str, ...]] = {
    "lf_run": ("UPDATE",),
    "lf_task_run": ("UPDATE",),
    "lf_tag": ("DELETE",),
    "lf_claim": ("UPDATE", "DELETE"),
}

#: Tables whose rows the user role reaches through row-level security policies: without
#: them, their extra rights are not granted. PostgreSQL refuses ``COPY FROM`` into them
#: for a role the policies apply to, so writers use ``INSERT`` there.
ROW_SECURITY = ("lf_run", "lf_task_run", "lf_log_record", "lf_tag")

#: The function that marks dead runs ``interrupted`` with the admin's rights.
REAP_FUNCTION = "lf_reap_stale_runs"
#: A stale-heartbeat limit below this many seconds is raised to it by ``REAP_FUNCTION``.
REAP_FLOOR_SECONDS = 10


def user_rights(table: str, *, view: bool = False, row_security: bool = True) -> tuple[str, ...]:
    """The privileges the user role gets on the ledger relation ``table``."""
    if view:
        return ("SELECT",)
    extra = EXTRA_RIGHTS.get(table, ())
    if table in ROW_SECURITY and not row_security:
        extra = ()
    return ("SELECT", "INSERT", *extra)
