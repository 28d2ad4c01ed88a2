"""Long-term memories, legal bases for holding sensitive data, and the store's vector
index (issue 5).

- ``memories``: one remembered fact per row, scoped by tenant and user (optionally assistant
  and thread), with source, purpose, legal basis, sensitivity, status and expiry. The text
  lives here; Chroma holds only the vector under the opaque ``memory_id``.
- ``legal_bases``: a recorded legal basis (GDPR Art. 6/9) for processing one data subject's
  sensitive data for a purpose: consent by the subject, or another basis with who, when and
  why. Withdrawal is recorded (the data it covered is deleted).
- ``store_item_vectors``: which fields of which LangGraph store item have a vector under
  an opaque id (the BaseStore's semantic index).

Full text: SQLite FTS5 external-content table ``memories_fts`` kept by triggers, with
``secure-delete`` where supported (3.42+); PostgreSQL a generated ``tsvector`` + GIN index.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE memories_fts USING fts5("
    "text, content='memories', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER memories_fts_ai AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER memories_fts_ad AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER memories_fts_au AFTER UPDATE OF text ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text); END",
)
_SQLITE_FTS_DROP = (
    "DROP TRIGGER IF EXISTS memories_fts_au",
    "DROP TRIGGER IF EXISTS memories_fts_ad",
    "DROP TRIGGER IF EXISTS memories_fts_ai",
    "DROP TABLE IF EXISTS memories_fts",
)
_PG_FTS = (
    "ALTER TABLE memories ADD COLUMN text_tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', coalesce(text, ''))) STORED",
    "CREATE INDEX ix_memories_text_tsv ON memories USING GIN (text_tsv)",
)
_PG_FTS_DROP = (
    "DROP INDEX IF EXISTS ix_memories_text_tsv",
    "ALTER TABLE memories DROP COLUMN IF EXISTS text_tsv",
)


def _sqlite_version(bind: sa.engine.Connection) -> tuple[int, ...]:
    version = bind.exec_driver_sql("select sqlite_version()").scalar_one()
    return tuple(int(part) for part in str(version).split("."))


def upgrade() -> None:
    op.create_table(
        "legal_bases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("basis", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(256), nullable=False),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("recorded_by", sa.String(256), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("withdrawn_at", TZ, nullable=True),
        sa.Column("withdrawn_by", sa.String(256), nullable=True),
    )
    op.create_index("ix_legal_bases_tenant_subject", "legal_bases", ["tenant", "subject"])
    op.create_table(
        "memories",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("memory_id", sa.String(32), nullable=False, unique=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user", sa.String(256), nullable=False),
        sa.Column("assistant_id", sa.String(128), nullable=True),
        sa.Column("thread_id", sa.String(64), nullable=True),
        sa.Column("content_key", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(256), nullable=False),
        sa.Column("legal_basis", sa.String(32), nullable=True),
        sa.Column(
            "basis_id",
            sa.String(32),
            sa.ForeignKey("legal_bases.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("sensitivity", sa.String(16), nullable=False),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("embedding_model", sa.String(256), nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("tenant", "user", "content_key", name="uq_memories_scope_content"),
    )
    op.create_index("ix_memories_tenant_user_status", "memories", ["tenant", "user", "status"])
    op.create_index("ix_memories_expires_at", "memories", ["expires_at"])
    op.create_index("ix_memories_basis_id", "memories", ["basis_id"])
    op.create_table(
        "store_item_vectors",
        sa.Column("vector_id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("namespace", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("field", sa.String(256), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_store_item_vectors_item", "store_item_vectors", ["tenant", "namespace", "key"]
    )

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
        if _sqlite_version(bind) >= (3, 42):
            op.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('secure-delete', 1)")
    elif bind.dialect.name == "postgresql":
        for statement in _PG_FTS:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_FTS_DROP:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        for statement in _PG_FTS_DROP:
            op.execute(statement)
    op.drop_index("ix_store_item_vectors_item", table_name="store_item_vectors")
    op.drop_table("store_item_vectors")
    op.drop_index("ix_memories_basis_id", table_name="memories")
    op.drop_index("ix_memories_expires_at", table_name="memories")
    op.drop_index("ix_memories_tenant_user_status", table_name="memories")
    op.drop_table("memories")
    op.drop_index("ix_legal_bases_tenant_subject", table_name="legal_bases")
    op.drop_table("legal_bases")
