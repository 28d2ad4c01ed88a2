"""Alembic environment: batch mode for SQLite so that down-migrations work."""

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
        # Serialise concurrent migrators on PostgreSQL.
        connection.exec_driver_sql("SELECT pg_advisory_lock(7254129)")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if is_postgres:
        connection.exec_driver_sql("SELECT pg_advisory_unlock(7254129)")
        connection.commit()
connectable.dispose()
