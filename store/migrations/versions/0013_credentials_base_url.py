"""Provider credentials scoped to a base URL (issue 6): an ``openai-compatible`` key is
stored for one server and sent only there.

- ``provider_credentials.base_url``: the normalised base URL an ``openai-compatible`` key
  belongs to (see ``providers.credentials.normalise_base_url``); ``''`` for ``openai`` and
  ``google`` keys, which have one endpoint each. NOT NULL with default ``''``, so existing
  rows stay valid.
- The primary key becomes (tenant, provider, base_url): a tenant may keep one key per
  compatible server.

Existing ``openai-compatible`` rows keep ``base_url = ''``: they were stored without
saying which server they belong to, so after this revision they are sent nowhere (before,
they went to every compatible endpoint). Listings show them as "unscoped, unused"; the
tenant admin re-enters each key with its base URL and deletes the old row.

Downgrade deletes every key stored for a base URL (``base_url <> ''``) before restoring
the (tenant, provider) primary key: several such keys of one tenant would collide there,
they are sealed bound to their URL (the old code cannot decrypt them), and as unscoped
keys they would reach every compatible endpoint again. Unscoped rows are kept.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLE = "provider_credentials"
PRIMARY_KEY = "provider_credentials_pkey"
"""PostgreSQL's default name for 0010's primary key, and this revision's name for it."""
TZ = sa.DateTime(timezone=True)


def _table_of_0010() -> sa.Table:
    """0010's table with its primary key named: on SQLite, where 0010 left it unnamed,
    the batch rebuilds the table from this instead of reflecting it, so the key can be
    dropped by name there too."""
    return sa.Table(
        TABLE,
        sa.MetaData(),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Column("key_hint", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "provider", name=PRIMARY_KEY),
    )


def upgrade() -> None:
    on_sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(TABLE, copy_from=_table_of_0010() if on_sqlite else None) as batch:
        batch.add_column(sa.Column("base_url", sa.String(512), nullable=False, server_default=""))
        batch.drop_constraint(PRIMARY_KEY, type_="primary")
        batch.create_primary_key(PRIMARY_KEY, ["tenant", "provider", "base_url"])


def downgrade() -> None:
    op.execute(sa.text(f"DELETE FROM {TABLE} WHERE base_url <> ''"))
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(PRIMARY_KEY, type_="primary")
        batch.create_primary_key(PRIMARY_KEY, ["tenant", "provider"])
        batch.drop_column("base_url")
