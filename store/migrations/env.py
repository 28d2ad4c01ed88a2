"""Alembic environment: batch mode for SQLite so that down-migrations work; on PostgreSQL
migrators queue on an advisory lock (SQLite's take a file lock in ``store.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from store.models import Base

config = context.config
url = config.attributes["sqlalchemy_url"]
connectable = create_engine(url, poolclass=pool.NullPool)

with connectable.connect() as connection:
    is_postgres = connection.dialect.name == "postgresql"
    if is_postgres:
        # Serialise concurrent migrators (N API + M workers starting together). The lock
        # belongs to the session: commit at once so that the migrations run in their own
        # transaction, committed before the lock is released; the next migrator then
        # reads the new version and has nothing to do.
        connection.exec_driver_sql("SELECT pg_advisory_lock(7254129)")
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        if connection.in_transaction():
            connection.commit()
    finally:
        if is_postgres:
            if connection.in_transaction():
                connection.rollback()
            connection.exec_driver_sql("SELECT pg_advisory_unlock(7254129)")
            connection.commit()
connectable.dispose()
