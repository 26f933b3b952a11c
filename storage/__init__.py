"""MedLite's storage: SQLAlchemy models, sessions, Alembic migrations and the record store.

It stores what it is given and knows nothing of models, inference or the UI.
"""

from storage.db import Database, StorageUnavailable, create_db_engine, upgrade_database
from storage.repository import RecordNotFound, Store

__all__ = [
    "Database",
    "RecordNotFound",
    "StorageUnavailable",
    "Store",
    "create_db_engine",
    "upgrade_database",
]
