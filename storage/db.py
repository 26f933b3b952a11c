"""Engines, sessions and schema upgrades for the MedLite database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class StorageUnavailable(RuntimeError):
    """The database cannot be reached or opened."""


def _parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as error:
        # The text is not echoed back: a malformed URL may still contain a password.
        raise ValueError(
            "database URL is not a valid SQLAlchemy URL; expected something like "
            "'sqlite:///var/medlite.db' or 'postgresql+psycopg://user:password@host:5432/medlite'"
        ) from error


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores FOREIGN KEY clauses unless asked, per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """An engine for `url`; for a SQLite file, its folder is created first."""
    parsed = _parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                folder = Path(database).expanduser().parent
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as error:
                    masked = parsed.render_as_string(hide_password=True)
                    raise StorageUnavailable(
                        f"cannot open the database at {masked}: cannot create the folder "
                        f"{folder} ({error.strerror}); check the path and its permissions"
                    ) from error
            engine = create_engine(parsed)
            event.listen(engine, "connect", _enable_sqlite_foreign_keys)
            return engine
        # A server may drop idle connections; check each one before use.
        return create_engine(parsed, pool_pre_ping=True)
    except ArgumentError as error:  # e.g. an unknown dialect or driver
        masked = parsed.render_as_string(hide_password=True)
        raise ValueError(f"database URL {masked} cannot be used: {error}") from error


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _unavailable(engine: Engine, error: DBAPIError) -> StorageUnavailable:
    masked = engine.url.render_as_string(hide_password=True)
    reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
    if engine.dialect.name == "sqlite":
        advice = "check that the file's folder exists and is writable"
    else:
        advice = (
            "check that the server is running and reachable from here, and that the user, "
            "password and database name in the URL are right"
        )
    return StorageUnavailable(f"cannot open the database at {masked} ({reason}); {advice}")


def upgrade_database(engine_or_url: Engine | str) -> None:
    """Bring the schema up to the newest migration (`alembic upgrade head`); safe to repeat.

    The migration runs on the caller's engine (passed to Alembic's env.py through
    `config.attributes["connection"]`), so connection options such as a PostgreSQL
    search_path apply to the migrated tables and to Alembic's version table alike.
    """
    owns_engine = isinstance(engine_or_url, str)
    engine = create_db_engine(engine_or_url) if owns_engine else engine_or_url
    try:
        try:
            connection = engine.connect()
        except DBAPIError as error:
            raise _unavailable(engine, error) from error
        with connection, connection.begin():
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if owns_engine:
            engine.dispose()


class Database:
    """One database: its engine and a session factory."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_db_engine(url)
        # Objects stay readable after commit; callers get them back after the session closes.
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> "Database":
        """Connect to `url` and upgrade its schema to the newest migration."""
        database = cls(url)
        try:
            upgrade_database(database.engine)
        except BaseException:
            database.close()
            raise
        return database

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
