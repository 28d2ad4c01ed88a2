"""Migration 0014 (note and ticket ids never reused) up and down, with rows in the tables,
on SQLite and PostgreSQL (the ``backend`` fixture): rows and indexes survive; after the
upgrade a deleted row's id is not handed out again; on SQLite the sequence also starts
above ids that approvals and the ledger mention; the downgrade keeps the rows."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect, text

from store import current_revision, downgrade, migrate, migration_head
from store.migrate import sync_url

STAMP = "'2026-12-01 10:00:00'"
NOTE = "INSERT INTO notes (tenant, owner, title, body, created_at, untrusted) VALUES ({})"
TICKET = (
    "INSERT INTO tickets (tenant, owner, title, body, status, priority, untrusted, created_at) "
    "VALUES ({})"
)


def _add_note(engine: Engine, title: str) -> int:
    with engine.begin() as connection:
        connection.execute(text(NOTE.format(f"'acme', 'ann', '{title}', 'body', {STAMP}, false")))
        return int(connection.execute(text("SELECT MAX(id) FROM notes")).scalar_one())


def _add_ticket(engine: Engine, title: str) -> int:
    with engine.begin() as connection:
        connection.execute(
            text(TICKET.format(f"'acme', 'ann', '{title}', 'b', 'open', 'normal', false, {STAMP}"))
        )
        return int(connection.execute(text("SELECT MAX(id) FROM tickets")).scalar_one())


def _delete(engine: Engine, table: str, row_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": row_id})


def _titles(engine: Engine, table: str) -> list[tuple[int, str]]:
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT id, title FROM {table} ORDER BY id"))
        return [(int(row[0]), str(row[1])) for row in rows]


def _indexes(engine: Engine, table: str) -> set[str]:
    return {str(index["name"]) for index in inspect(engine).get_indexes(table)}


def _sqlite_ddl(engine: Engine, table: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                {"t": table},
            ).scalar_one()
        )


def test_0014_up_and_down_keeps_rows_and_stops_id_reuse(
    backend: str, url: str, engine: Engine
) -> None:
    migrate(url, "0013")
    kept = _add_note(engine, "kept")
    freed = _add_note(engine, "freed")
    ticket = _add_ticket(engine, "ticket")

    migrate(url)
    assert current_revision(url) == migration_head()
    assert _titles(engine, "notes") == [(kept, "kept"), (freed, "freed")]
    assert _titles(engine, "tickets") == [(ticket, "ticket")]
    assert "ix_notes_tenant_owner" in _indexes(engine, "notes")
    assert "ix_tickets_tenant_status" in _indexes(engine, "tickets")
    if backend == "sqlite":
        assert "AUTOINCREMENT" in _sqlite_ddl(engine, "notes").upper()
        assert "AUTOINCREMENT" in _sqlite_ddl(engine, "tickets").upper()

    # The highest id is deleted: the next row must not get it again.
    _delete(engine, "notes", freed)
    assert _add_note(engine, "new") > freed
    _delete(engine, "tickets", ticket)
    assert _add_ticket(engine, "new ticket") > ticket

    downgrade(url, "0013")
    assert current_revision(url) == "0013"
    assert [title for _, title in _titles(engine, "notes")] == ["kept", "new"]
    assert [title for _, title in _titles(engine, "tickets")] == ["new ticket"]
    assert "ix_notes_tenant_owner" in _indexes(engine, "notes")
    if backend == "sqlite":
        assert "AUTOINCREMENT" not in _sqlite_ddl(engine, "notes").upper()

    migrate(url)
    assert [title for _, title in _titles(engine, "notes")] == ["kept", "new"]
    downgrade(url, "base")
    assert "notes" not in inspect(engine).get_table_names()


def test_0014_starts_sqlite_ids_above_those_approvals_and_the_ledger_mention(
    tmp_path: Path,
) -> None:
    # Ids freed before the upgrade are unknown to SQLite; a pending approval for note 7
    # (deleted, as were 3..6) must not fit the first note created after the upgrade.
    url = f"sqlite+aiosqlite:///{tmp_path / 'relaygraph.db'}"
    migrate(url, "0013")
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO approvals (approval_id, tenant, requester, via, tool, risk, "
                    "args, args_hash, reason, preview, status, created_at, expires_at) VALUES "
                    "('apr_1', 'acme', 'ann', 'mcp', 'notes_delete', 'destructive', "
                    f"'{{\"note_id\": 7}}', 'h', 'r', '{{}}', 'pending', {STAMP}, {STAMP})"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO tool_calls (thread_id, task_id, tool_call_id, tenant, "
                    "principal, tool, args, status, result, created_at) VALUES "
                    "('t', 'k', 'c', 'acme', 'ann', 'tickets_create', '{}', 'succeeded', "
                    f"'{{\"id\": 12}}', {STAMP})"
                )
            )
        first_note = _add_note(engine, "one")
        assert first_note == 1

        migrate(url)

        assert _titles(engine, "notes") == [(1, "one")]
        assert _add_note(engine, "after the upgrade") == 8
        assert _add_ticket(engine, "after the upgrade") == 13
    finally:
        engine.dispose()
