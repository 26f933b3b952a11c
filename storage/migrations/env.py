"""Alembic environment: runs migrations on the connection that `storage.db` hands over.

MedLite drives Alembic from code (`storage.db.upgrade_database`), never from an alembic.ini,
so the caller's engine, with its connection options, is the one migrated.
"""

from __future__ import annotations

from alembic import context

from storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "storage migrations need a connection in config.attributes['connection']; "
        "run them with storage.db.upgrade_database(engine_or_url)"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
