"""Distillation runs in the `distillation_runs` table: started, finished with metrics, listed for the admin tab."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import JOB_STATUSES, DistillationRun, utc_now
from storage.repository import RecordNotFound, _as_utc, _audit, _check_text, _check_user_name, _json_object

FINAL_STATUSES = tuple(status for status in JOB_STATUSES if status != "running")


@dataclass(frozen=True)
class DistillationRunRecord:
    id: int
    user_name: str
    name: str
    teacher: str
    student: str
    config: dict[str, Any]
    output_dir: str
    status: str
    error: str | None
    metrics: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


def _record(row: DistillationRun) -> DistillationRunRecord:
    return DistillationRunRecord(
        id=row.id,
        user_name=row.user_name,
        name=row.name,
        teacher=row.teacher,
        student=row.student,
        config=row.config,
        output_dir=row.output_dir,
        status=row.status,
        error=row.error,
        metrics=row.metrics,
        created_at=_as_utc(row.created_at),
        finished_at=_as_utc(row.finished_at) if row.finished_at else None,
    )


class DistillationRunStore:
    """Distillation runs of one database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def start(
        self, *, user_name: str, name: str, teacher: str, student: str, config: Mapping[str, Any], output_dir: str
    ) -> int:
        """Record a run that is starting (status running); returns its id."""
        _check_user_name(user_name)
        for field, value in (("name", name), ("teacher", teacher), ("student", student)):
            _check_text(field, value, table=DistillationRun.__table__)
            if not value.strip():
                raise ValueError(f"{field} must not be empty")
        if not isinstance(output_dir, str) or not output_dir:
            raise ValueError("output_dir must be non-empty text")
        stored_config = _json_object("config", config)
        with self.database.session() as session:
            row = DistillationRun(
                user_name=user_name,
                name=name,
                teacher=teacher,
                student=student,
                config=stored_config,
                output_dir=output_dir,
                status="running",
            )
            session.add(row)
            session.flush()
            _audit(session, user_name, "distillation_started", distillation_run_id=row.id, name=name)
            return row.id

    def finish(
        self, run_id: int, *, status: str, metrics: Mapping[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Mark a run complete, failed or stopped, with its metrics or its error."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")
        stored_metrics = _json_object("metrics", metrics) if metrics is not None else None
        if error is not None and not isinstance(error, str):
            raise ValueError(f"error must be text, got {type(error).__name__}")
        with self.database.session() as session:
            row = session.get(DistillationRun, run_id)
            if row is None:
                raise RecordNotFound(f"distillation run {run_id} does not exist")
            row.status = status
            row.metrics = stored_metrics
            row.error = error
            row.finished_at = utc_now()
            _audit(session, row.user_name, "distillation_finished", distillation_run_id=run_id, status=status)

    def get(self, run_id: int) -> DistillationRunRecord | None:
        with self.database.session() as session:
            row = session.get(DistillationRun, run_id)
            return _record(row) if row is not None else None

    def list(self, limit: int = 50) -> list[DistillationRunRecord]:
        """The newest runs first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = (
            select(DistillationRun).order_by(DistillationRun.created_at.desc(), DistillationRun.id.desc()).limit(limit)
        )
        with self.database.session() as session:
            return [_record(row) for row in session.scalars(query)]
