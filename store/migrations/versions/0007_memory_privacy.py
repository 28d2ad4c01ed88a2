"""Memory, documents and privacy holds (issue 5): documents, their grants, chunks with a
full-text index, and ingestion jobs.

The full-text index differs per backend:

- SQLite: an FTS5 external-content table ``document_chunks_fts`` over
  ``document_chunks.text`` (keyed by the chunk's INTEGER PRIMARY KEY, which VACUUM keeps),
  kept in step by triggers. Where SQLite supports it (3.42+), ``secure-delete`` is on so a
  deleted chunk's tokens leave the index at once (erasure).
- PostgreSQL: a stored generated ``tsvector`` column ``text_tsv`` with a GIN index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE document_chunks_fts USING fts5("
    "text, content='document_chunks', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER document_chunks_fts_ai AFTER INSERT ON document_chunks BEGIN "
    "INSERT INTO document_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER document_chunks_fts_ad AFTER DELETE ON document_chunks BEGIN "
    "INSERT INTO document_chunks_fts(document_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER document_chunks_fts_au AFTER UPDATE OF text ON document_chunks BEGIN "
    "INSERT INTO document_chunks_fts(document_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO document_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
)
_SQLITE_FTS_DROP = (
    "DROP TRIGGER IF EXISTS document_chunks_fts_au",
    "DROP TRIGGER IF EXISTS document_chunks_fts_ad",
    "DROP TRIGGER IF EXISTS document_chunks_fts_ai",
    "DROP TABLE IF EXISTS document_chunks_fts",
)
_PG_FTS = (
    "ALTER TABLE document_chunks ADD COLUMN text_tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', coalesce(text, ''))) STORED",
    "CREATE INDEX ix_document_chunks_text_tsv ON document_chunks USING GIN (text_tsv)",
)
_PG_FTS_DROP = (
    "DROP INDEX IF EXISTS ix_document_chunks_text_tsv",
    "ALTER TABLE document_chunks DROP COLUMN IF EXISTS text_tsv",
)


def _sqlite_version(bind: sa.engine.Connection) -> tuple[int, ...]:
    version = bind.exec_driver_sql("select sqlite_version()").scalar_one()
    return tuple(int(part) for part in str(version).split("."))


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("mime_type", sa.String(128), nullable=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("sensitivity", sa.String(16), nullable=False),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.Column("page_count", sa.Integer, nullable=False),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("legal_basis_id", sa.String(64), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("tenant", "owner", "source", name="uq_documents_tenant_owner_source"),
    )
    op.create_index("ix_documents_tenant_status", "documents", ["tenant", "status"])
    op.create_index("ix_documents_expires_at", "documents", ["expires_at"])
    op.create_table(
        "document_grants",
        sa.Column(
            "document_id",
            sa.String(32),
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("grantee", sa.String(256), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_document_grants_tenant_grantee", "document_grants", ["tenant", "kind", "grantee"]
    )
    op.create_table(
        "document_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chunk_id", sa.String(32), nullable=False, unique=True),
        sa.Column(
            "document_id",
            sa.String(32),
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("page", sa.Integer, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("sensitivity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("embedding_model", sa.String(256), nullable=False),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_document_chunks_document_seq", "document_chunks", ["document_id", "seq"])
    op.create_index("ix_document_chunks_tenant_owner", "document_chunks", ["tenant", "owner"])
    op.create_table(
        "ingestion_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "document_id",
            sa.String(32),
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("mime_type", sa.String(128), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=True),
        sa.Column("legal_basis_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sensitivity", sa.String(16), nullable=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
    )
    op.create_index(
        "ix_ingestion_jobs_status_next", "ingestion_jobs", ["status", "next_attempt_at"]
    )
    op.create_index("ix_ingestion_jobs_document", "ingestion_jobs", ["document_id"])
    op.create_index("ix_ingestion_jobs_tenant_owner", "ingestion_jobs", ["tenant", "owner"])

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
        if _sqlite_version(bind) >= (3, 42):
            op.execute(
                "INSERT INTO document_chunks_fts(document_chunks_fts, rank) "
                "VALUES ('secure-delete', 1)"
            )
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
    op.drop_index("ix_ingestion_jobs_tenant_owner", table_name="ingestion_jobs")
    op.drop_index("ix_ingestion_jobs_document", table_name="ingestion_jobs")
    op.drop_index("ix_ingestion_jobs_status_next", table_name="ingestion_jobs")
    op.drop_table("ingestion_jobs")
    op.drop_index("ix_document_chunks_tenant_owner", table_name="document_chunks")
    op.drop_index("ix_document_chunks_document_seq", table_name="document_chunks")
    op.drop_table("document_chunks")
    op.drop_index("ix_document_grants_tenant_grantee", table_name="document_grants")
    op.drop_table("document_grants")
    op.drop_index("ix_documents_expires_at", table_name="documents")
    op.drop_index("ix_documents_tenant_status", table_name="documents")
    op.drop_table("documents")
