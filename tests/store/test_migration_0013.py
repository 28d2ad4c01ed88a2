"""Migration 0013 (provider credentials scoped to a base URL) up and down, with rows in the
table, on SQLite and PostgreSQL (the ``backend`` fixture): existing rows survive the
upgrade with ``base_url = ''``; the key becomes (tenant, provider, base_url); the downgrade
drops URL-scoped keys (they would collide) and restores (tenant, provider)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from store import current_revision, downgrade, migrate, migration_head

pytestmark = pytest.mark.usefixtures("backend")

COLUMNS = "tenant, provider, ciphertext, key_hint, created_by, created_at, updated_at"
STAMP = "'2026-11-30 10:00:00', '2026-11-30 10:00:00'"


def _rows(engine: Engine) -> list[tuple[str, ...]]:
    inspector = inspect(engine)
    has_url = "base_url" in {c["name"] for c in inspector.get_columns("provider_credentials")}
    scope = ", base_url" if has_url else ""
    with engine.connect() as connection:
        result = connection.execute(
            text(f"SELECT tenant, provider{scope} FROM provider_credentials ORDER BY 1, 2{scope}")
        )
        return [tuple(row) for row in result]


def _primary_key(engine: Engine) -> list[str]:
    return list(inspect(engine).get_pk_constraint("provider_credentials")["constrained_columns"])


def _insert(engine: Engine, values: str, columns: str = COLUMNS) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO provider_credentials ({columns}) VALUES ({values})"))


def test_0013_up_and_down_keeps_unscoped_rows_and_drops_scoped_ones(
    url: str, engine: Engine
) -> None:
    migrate(url, "0012")
    assert _primary_key(engine) == ["tenant", "provider"]
    _insert(engine, f"'acme', 'openai', 'v1:o', '…0001', 'ann', {STAMP}")
    _insert(engine, f"'acme', 'openai-compatible', 'v1:c', '…0002', 'ann', {STAMP}")

    migrate(url)
    assert current_revision(url) == migration_head()
    assert _primary_key(engine) == ["tenant", "provider", "base_url"]
    assert _rows(engine) == [("acme", "openai", ""), ("acme", "openai-compatible", "")]

    # One key per compatible server now; the same server twice still collides.
    scoped = f"{COLUMNS}, base_url"
    for server in ("http://a.test/v1", "http://b.test/v1"):
        _insert(
            engine,
            f"'acme', 'openai-compatible', 'v1:s', '…0003', NULL, {STAMP}, '{server}'",
            scoped,
        )
    with pytest.raises(IntegrityError):
        _insert(
            engine,
            f"'acme', 'openai-compatible', 'v1:d', '…0004', NULL, {STAMP}, 'http://a.test/v1'",
            scoped,
        )
    assert len(_rows(engine)) == 4

    downgrade(url, "0012")
    assert current_revision(url) == "0012"
    assert _primary_key(engine) == ["tenant", "provider"]
    assert _rows(engine) == [("acme", "openai"), ("acme", "openai-compatible")]
    with pytest.raises(IntegrityError):  # (tenant, provider) is the key again
        _insert(engine, f"'acme', 'openai', 'v1:x', '…0005', NULL, {STAMP}")

    migrate(url)
    assert _rows(engine) == [("acme", "openai", ""), ("acme", "openai-compatible", "")]
    downgrade(url, "base")
    assert current_revision(url) is None
    assert "provider_credentials" not in inspect(engine).get_table_names()
