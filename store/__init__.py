"""Relational data: SQLAlchemy 2 async models, Alembic migrations, sessions."""

from store.database import Database, StoreError
from store.migrate import current_revision, downgrade, migrate, migration_head

__all__ = ["Database", "StoreError", "current_revision", "downgrade", "migrate", "migration_head"]
