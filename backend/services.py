"""Wires settings, engine, storage and the consultation service once, for the app and the CLI."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from backend.consult import ConsultationService
from backend.inference import create_engine
from backend.inference.engine import Engine
from backend.inference.types import GenerationParams
from backend.settings import Settings
from storage.db import Database, StorageUnavailable
from storage.repository import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    store: Store
    consultations: ConsultationService

    def login(self, username: str, password: str) -> bool:
        """Gradio's auth callback: checks the users table."""
        return self.store.verify_user(username, password) is not None

    def login_required(self) -> bool:
        """Sign-in is on as soon as one user exists; with none (a demo or a Space) the app is open."""
        return self.store.count_users() > 0


def build_services(settings: Settings) -> Services:
    """Open the database (migrating it) and pick the engine; fails only if storage is unreachable."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        database = Database.open(settings.resolved_database_url)
    except StorageUnavailable:
        log.error("cannot open the database; check MEDLITE_DATABASE_URL")
        raise
    store = Store(database)
    engine = create_engine(settings)
    params = GenerationParams(max_tokens=settings.max_new_tokens)
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        consultations=ConsultationService(engine, store, params),
    )
