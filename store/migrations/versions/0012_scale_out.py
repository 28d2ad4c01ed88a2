"""Scale-out on PostgreSQL (issue 10): cross-process wake-ups by LISTEN/NOTIFY.

PostgreSQL only (SQLite processes poll instead, so this revision is a no-op there):

- ``runs``: a row trigger sends ``NOTIFY relaygraph_runs, '<run_id> <status> <cancel>
  <lease_owner>'`` when a run is inserted or its status or cancel request changes, so idle
  workers claim a new run at once and the worker owning a run hears its cancellation.
- ``run_events``: a statement trigger sends ``NOTIFY relaygraph_events, '<run_id>'`` once
  per run whose events a transaction inserted, so a stream followed in another process
  reads them at once.

- ``rate_limit_counters``: an UNLOGGED table of fixed-window counters, the PostgreSQL
  storage of API rate limits shared by every process (``store.rate_counters``).

Notifications are delivered at commit and carry no data that is not in the tables: the
tables stay the source of truth and a listener that missed one re-reads them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_PG_UP = (
    """
    CREATE OR REPLACE FUNCTION relaygraph_notify_run() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify(
            'relaygraph_runs',
            NEW.run_id || ' ' || NEW.status || ' ' || COALESCE(NEW.cancel_requested, '-')
            || ' ' || COALESCE(NEW.lease_owner, '-')
        );
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE OF status, cancel_requested ON runs
    FOR EACH ROW EXECUTE FUNCTION relaygraph_notify_run()
    """,
    """
    CREATE OR REPLACE FUNCTION relaygraph_notify_events() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('relaygraph_events', changed.run_id)
        FROM (SELECT DISTINCT run_id FROM new_events) AS changed;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER run_events_notify AFTER INSERT ON run_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION relaygraph_notify_events()
    """,
    """
    CREATE UNLOGGED TABLE rate_limit_counters (
        key TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )
    """,
)
_PG_DOWN = (
    "DROP TABLE IF EXISTS rate_limit_counters",
    "DROP TRIGGER IF EXISTS run_events_notify ON run_events",
    "DROP FUNCTION IF EXISTS relaygraph_notify_events()",
    "DROP TRIGGER IF EXISTS runs_notify ON runs",
    "DROP FUNCTION IF EXISTS relaygraph_notify_run()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_DOWN:
            op.execute(statement)
