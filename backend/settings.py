"""Runtime settings, read once from the environment (the variables are fixed in DESIGN.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to know about where it runs.

    `backend_url` set means a remote OpenAI-compatible server (TGI, vLLM, SGLang, llama.cpp,
    `transformers serve`); unset means the embedded in-process engine on `model`.
    """

    backend_url: str | None = None
    model: str | None = None
    data_dir: Path = field(default_factory=lambda: Path("var"))
    database_url: str | None = None
    api_key: str | None = None
    max_new_tokens: int = 1024
    request_timeout_s: float = 120.0
    concurrency: int = 8

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = Path(os.environ.get("MEDLITE_DATA_DIR") or "var")
        return cls(
            backend_url=os.environ.get("MEDLITE_BACKEND_URL") or None,
            model=os.environ.get("MEDLITE_MODEL") or None,
            data_dir=data_dir,
            database_url=os.environ.get("MEDLITE_DATABASE_URL") or None,
            api_key=os.environ.get("MEDLITE_API_KEY") or None,
            max_new_tokens=_env_int("MEDLITE_MAX_NEW_TOKENS", 1024),
            request_timeout_s=_env_float("MEDLITE_REQUEST_TIMEOUT", 120.0),
            concurrency=_env_int("MEDLITE_CONCURRENCY", 8),
        )

    @property
    def resolved_database_url(self) -> str:
        """`MEDLITE_DATABASE_URL`, else a SQLite file inside the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'medlite.db').resolve()}"
