"""The database tables, as SQLAlchemy 2.0 typed models.

The migrations (storage/migrations/versions) create exactly these tables; a test compares them.
Timestamps are written in UTC by Python (not by a server default) so SQLite and PostgreSQL agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

USER_ROLES = ("clinician", "admin")
CONSULTATION_STATUSES = ("streaming", "complete", "incomplete", "error")
FINISHED_STATUSES = ("complete", "incomplete", "error")
USER_NAME_MAX_LENGTH = 64
FEEDBACK_COMMENT_MAX_LENGTH = 2000

# Named constraints make migrations reproducible: the same names on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _sql_in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_sql_in("role", USER_ROLES), name="role_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(USER_NAME_MAX_LENGTH), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Consultation(Base):
    __tablename__ = "consultations"
    __table_args__ = (
        CheckConstraint(_sql_in("status", CONSULTATION_STATUSES), name="status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(USER_NAME_MAX_LENGTH), index=True)
    question_type: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[str] = mapped_column(String(128))
    template_version: Mapped[str] = mapped_column(String(32))
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    rendered_prompt: Mapped[str] = mapped_column(Text)
    reasoning: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    red_flags: Mapped[list[str]] = mapped_column(JSON)
    model: Mapped[str] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(32))
    backend_url: Mapped[str | None] = mapped_column(String(512))
    generation_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    time_to_first_token_s: Mapped[float | None] = mapped_column(Float)
    latency_s: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id"), index=True)
    user_name: Mapped[str] = mapped_column(String(USER_NAME_MAX_LENGTH))
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(USER_NAME_MAX_LENGTH), index=True)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class EvaluationRun(Base):
    """One benchmark run (migration 0002): what was asked of which model, and how it scored.

    `metrics` holds the report without its items (accuracy, counts, interval, latency, tokens);
    `items` the per-item outcomes, kept apart so listing runs never loads them.
    """

    __tablename__ = "evaluation_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(USER_NAME_MAX_LENGTH))
    model: Mapped[str] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(32))
    backend_url: Mapped[str | None] = mapped_column(String(512))
    dataset: Mapped[str] = mapped_column(String(32), index=True)
    data_path: Mapped[str] = mapped_column(Text)
    item_limit: Mapped[int | None] = mapped_column(Integer)
    template_id: Mapped[str] = mapped_column(String(128))
    template_version: Mapped[str] = mapped_column(String(32))
    generation_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


JOB_STATUSES = ("running", "complete", "failed", "stopped")


class DistillationRun(Base):
    """One distillation pipeline run (migration 0003): its validated config, where its files are,
    how it ended, and the metrics.json it wrote (teacher, student before and after)."""

    __tablename__ = "distillation_runs"
    __table_args__ = (CheckConstraint(_sql_in("status", JOB_STATUSES), name="status_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(USER_NAME_MAX_LENGTH))
    name: Mapped[str] = mapped_column(String(255), index=True)
    teacher: Mapped[str] = mapped_column(String(512))
    student: Mapped[str] = mapped_column(String(512))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    output_dir: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BenchmarkRun(Base):
    """One speed or memory benchmark (migration 0003): `kind` says which (memory, serve, gpu),
    `subject` what was measured (a model folder or a shape's name), `results` the printed tables."""

    __tablename__ = "benchmark_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(USER_NAME_MAX_LENGTH))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(512))
    device: Mapped[str] = mapped_column(String(255))
    results: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
