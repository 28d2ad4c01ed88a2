"""Note and ticket ids are never reused.

An approval is bound to a call's arguments (``{"note_id": 4}``) and stays valid for an
hour. Without ``AUTOINCREMENT`` SQLite numbers a new row ``max(id) + 1``, so after note 4
is deleted the next note is note 4 again, and an approval given to delete the old note
would delete the new one, which the reviewer never saw.

- SQLite: ``notes`` and ``tickets`` are rebuilt as ``INTEGER PRIMARY KEY AUTOINCREMENT``
  (batch mode copies the rows and recreates the indexes; neither table has triggers or an
  FTS index). SQLite then records the highest id in ``sqlite_sequence`` and never hands
  out a lower or equal one. Ids already freed before this revision are unknown to SQLite;
  the sequence starts above the highest id the approvals and the tool-call ledger mention
  as well, so a pending approval for a note deleted before the upgrade cannot match a new
  note either.
- PostgreSQL: nothing to do. ``SERIAL`` / identity columns draw from a sequence that
  never goes back, so ids were never reused there.

Downgrade rebuilds the tables without ``AUTOINCREMENT`` (rows kept); ids may be reused
again after that.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLES = {"notes": ("note_id", "notes_"), "tickets": ("ticket_id", "tickets_")}
"""Table → (the id argument of its tools, its tools' name prefix)."""


def _rebuild(table: str, *, autoincrement: bool) -> None:
    with op.batch_alter_table(
        table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def _highest_id_mentioned(connection: sa.Connection, argument: str, prefix: str) -> int:
    """The highest id of the table the approvals and the ledger refer to: arguments of
    its tools' calls and ids returned by its ``*_create`` tool."""
    pattern = f"{prefix}%"
    query = sa.text(
        f"""
        SELECT MAX(seen) FROM (
            SELECT CAST(json_extract(args, '$.{argument}') AS INTEGER) AS seen
              FROM approvals WHERE tool LIKE :pattern AND json_valid(args)
            UNION ALL
            SELECT CAST(json_extract(args, '$.{argument}') AS INTEGER)
              FROM tool_calls WHERE tool LIKE :pattern AND json_valid(args)
            UNION ALL
            SELECT CAST(json_extract(result, '$.id') AS INTEGER)
              FROM tool_calls WHERE tool = :create AND json_valid(result)
        )
        """
    )
    found = connection.execute(query, {"pattern": pattern, "create": f"{prefix}create"})
    return int(found.scalar() or 0)


def _raise_sequence(connection: sa.Connection, table: str, floor: int) -> None:
    """Make the next id of ``table`` greater than ``floor`` (SQLite's sequence table)."""
    if floor <= 0:
        return
    raised = connection.execute(
        sa.text("UPDATE sqlite_sequence SET seq = :floor WHERE name = :table AND seq < :floor"),
        {"floor": floor, "table": table},
    )
    if raised.rowcount == 0:
        known = connection.execute(
            sa.text("SELECT 1 FROM sqlite_sequence WHERE name = :table"), {"table": table}
        ).first()
        if known is None:
            connection.execute(
                sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:table, :floor)"),
                {"table": table, "floor": floor},
            )


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL sequences never reuse ids
    for table, (argument, prefix) in TABLES.items():
        _rebuild(table, autoincrement=True)
        _raise_sequence(connection, table, _highest_id_mentioned(connection, argument, prefix))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        _rebuild(table, autoincrement=False)
