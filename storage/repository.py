"""Reading and writing MedLite's records; every write also leaves an audit-log entry.

Methods return frozen dataclasses, not ORM rows, so callers can use them after the session has
closed and cannot change stored data by accident. Input is checked before anything is written,
and each method is one transaction, so a refused call leaves what is stored untouched.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import String, Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from storage.db import Database
from storage.models import (
    FEEDBACK_COMMENT_MAX_LENGTH,
    FINISHED_STATUSES,
    USER_NAME_MAX_LENGTH,
    USER_ROLES,
    AuditEntry,
    Consultation,
    EvaluationRun,
    Feedback,
    User,
    utc_now,
)
from storage.passwords import hash_password, verify_password

PASSWORD_MIN_LENGTH = 8



@functools.cache
def _unknown_user_hash() -> str:
    # verify_user checks against this when the name is unknown, so a wrong name takes as long
    # to refuse as a wrong password and response times do not reveal which names exist.
    return hash_password("medlite-no-such-user")


class RecordNotFound(KeyError):
    """No stored record has the given id."""

    def __str__(self) -> str:
        # KeyError would print the message in quotes; a person reads this.
        return str(self.args[0])


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True)
class ConsultationRecord:
    id: int
    user_name: str
    question_type: str
    language: str
    template_id: str
    template_version: str
    fields: dict[str, Any]
    rendered_prompt: str
    reasoning: str
    answer: str
    red_flags: list[str]
    model: str
    backend: str
    backend_url: str | None
    generation_params: dict[str, Any]
    time_to_first_token_s: float | None
    latency_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    status: str
    error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    consultation_id: int
    user_name: str
    helpful: bool
    comment: str
    created_at: datetime


@dataclass(frozen=True)
class AuditRecord:
    id: int
    user_name: str
    action: str
    detail: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class EvaluationRunSummary:
    """An evaluation run without its per-item outcomes, for lists of runs."""

    id: int
    user_name: str
    model: str
    backend: str
    backend_url: str | None
    dataset: str
    data_path: str
    limit: int | None
    template_id: str
    template_version: str
    generation_params: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class EvaluationRunRecord(EvaluationRunSummary):
    items: list[dict[str, Any]]


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _check_user_name(user_name: str, field: str = "user_name") -> None:
    if not isinstance(user_name, str) or not user_name.strip():
        raise ValueError(f"{field} must be a non-empty string")
    if user_name != user_name.strip():
        raise ValueError(f"{field} must not start or end with spaces, got {user_name!r}")
    if len(user_name) > USER_NAME_MAX_LENGTH:
        raise ValueError(f"{field} must be at most {USER_NAME_MAX_LENGTH} characters")


def _check_text(field: str, value: Any, *, nullable: bool = False, table: Table = Consultation.__table__) -> None:
    """Check a short text against its column (in consultations unless told), so the message names the field."""
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text, got {type(value).__name__}")
    column_type = table.c[field].type
    if isinstance(column_type, String) and column_type.length and len(value) > column_type.length:
        raise ValueError(f"{field} must be at most {column_type.length} characters")


def _json_object(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{field} must be a mapping, got {type(value).__name__}")
    try:
        json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{field} cannot be stored as JSON: {error}") from error
    return dict(value)


def _string_list(field: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{field} must be a list of strings, got {type(value).__name__}")
    if not all(isinstance(item, str) for item in value):
        raise ValueError(f"{field} must be a list of strings")
    return list(value)


def _to_user(row: User) -> UserRecord:
    return UserRecord(name=row.name, role=row.role, created_at=_as_utc(row.created_at))


def _to_consultation(row: Consultation) -> ConsultationRecord:
    return ConsultationRecord(
        id=row.id,
        user_name=row.user_name,
        question_type=row.question_type,
        language=row.language,
        template_id=row.template_id,
        template_version=row.template_version,
        fields=row.fields,
        rendered_prompt=row.rendered_prompt,
        reasoning=row.reasoning,
        answer=row.answer,
        red_flags=row.red_flags,
        model=row.model,
        backend=row.backend,
        backend_url=row.backend_url,
        generation_params=row.generation_params,
        time_to_first_token_s=row.time_to_first_token_s,
        latency_s=row.latency_s,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        status=row.status,
        error=row.error,
        created_at=_as_utc(row.created_at),
        finished_at=_as_utc(row.finished_at) if row.finished_at is not None else None,
    )


def _to_feedback(row: Feedback) -> FeedbackRecord:
    return FeedbackRecord(
        id=row.id,
        consultation_id=row.consultation_id,
        user_name=row.user_name,
        helpful=row.helpful,
        comment=row.comment,
        created_at=_as_utc(row.created_at),
    )


def _to_audit(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        user_name=row.user_name,
        action=row.action,
        detail=row.detail,
        created_at=_as_utc(row.created_at),
    )


def _evaluation_run_fields(row: EvaluationRun) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_name": row.user_name,
        "model": row.model,
        "backend": row.backend,
        "backend_url": row.backend_url,
        "dataset": row.dataset,
        "data_path": row.data_path,
        "limit": row.item_limit,
        "template_id": row.template_id,
        "template_version": row.template_version,
        "generation_params": row.generation_params,
        "metrics": row.metrics,
        "created_at": _as_utc(row.created_at),
    }


def _json_object_list(field: str, value: Any) -> list[dict[str, Any]]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise ValueError(f"{field} must be a list of mappings, got {type(value).__name__}")
    return [_json_object(f"{field}[{index}]", item) for index, item in enumerate(value)]


def _audit(session: Session, user_name: str, action: str, **detail: Any) -> None:
    session.add(AuditEntry(user_name=user_name, action=action, detail=detail))


def _consultation_or_raise(session: Session, consultation_id: int) -> Consultation:
    row = session.get(Consultation, consultation_id)
    if row is None:
        raise RecordNotFound(f"consultation {consultation_id} does not exist")
    return row


class Store:
    """MedLite's records in one database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # Consultations

    def start_consultation(
        self,
        *,
        user_name: str,
        question_type: str,
        language: str,
        template_id: str,
        template_version: str,
        fields: Mapping[str, Any],
        rendered_prompt: str,
        red_flags: Sequence[str],
        model: str,
        backend: str,
        backend_url: str | None,
        generation_params: Mapping[str, Any],
    ) -> int:
        """Record a consultation whose answer is about to stream; returns its id."""
        _check_user_name(user_name)
        for field, value in (
            ("question_type", question_type),
            ("language", language),
            ("template_id", template_id),
            ("template_version", template_version),
            ("rendered_prompt", rendered_prompt),
            ("model", model),
            ("backend", backend),
        ):
            _check_text(field, value)
        _check_text("backend_url", backend_url, nullable=True)
        fields = _json_object("fields", fields)
        red_flags = _string_list("red_flags", red_flags)
        generation_params = _json_object("generation_params", generation_params)
        with self.database.session() as session:
            row = Consultation(
                user_name=user_name,
                question_type=question_type,
                language=language,
                template_id=template_id,
                template_version=template_version,
                fields=fields,
                rendered_prompt=rendered_prompt,
                reasoning="",
                answer="",
                red_flags=red_flags,
                model=model,
                backend=backend,
                backend_url=backend_url,
                generation_params=generation_params,
                status="streaming",
            )
            session.add(row)
            session.flush()
            _audit(
                session,
                user_name,
                "consultation.start",
                consultation_id=row.id,
                question_type=question_type,
                language=language,
                template_id=template_id,
                model=model,
                backend=backend,
            )
            return row.id

    def finish_consultation(
        self,
        consultation_id: int,
        *,
        reasoning: str,
        answer: str,
        status: str,
        error: str | None = None,
        time_to_first_token_s: float | None = None,
        latency_s: float | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        model: str | None = None,
    ) -> None:
        """Store the streamed reply and how it ended ('complete', 'incomplete' or 'error').

        `model` replaces the model name stored at the start (known only once the reply began);
        None keeps it."""
        if status not in FINISHED_STATUSES:
            allowed = ", ".join(FINISHED_STATUSES)
            raise ValueError(f"status must be one of {allowed}, got {status!r}")
        _check_text("reasoning", reasoning)
        _check_text("answer", answer)
        _check_text("error", error, nullable=True)
        with self.database.session() as session:
            row = _consultation_or_raise(session, consultation_id)
            if row.status != "streaming":
                raise ValueError(
                    f"consultation {consultation_id} is already {row.status}; "
                    "a finished consultation is not overwritten"
                )
            row.reasoning = reasoning
            row.answer = answer
            row.status = status
            row.error = error
            if model:
                row.model = model
            row.time_to_first_token_s = time_to_first_token_s
            row.latency_s = latency_s
            row.prompt_tokens = prompt_tokens
            row.completion_tokens = completion_tokens
            row.finished_at = utc_now()
            _audit(
                session,
                row.user_name,
                "consultation.finish",
                consultation_id=consultation_id,
                status=status,
            )

    def get_consultation(self, consultation_id: int) -> ConsultationRecord | None:
        with self.database.session() as session:
            row = session.get(Consultation, consultation_id)
            return _to_consultation(row) if row is not None else None

    def list_consultations(self, user_name: str, limit: int = 50) -> list[ConsultationRecord]:
        """The user's consultations, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = (
            select(Consultation)
            .where(Consultation.user_name == user_name)
            .order_by(Consultation.created_at.desc(), Consultation.id.desc())
            .limit(limit)
        )
        with self.database.session() as session:
            return [_to_consultation(row) for row in session.scalars(query)]

    def count_consultations(self) -> int:
        with self.database.session() as session:
            return session.scalar(select(func.count()).select_from(Consultation)) or 0

    # Feedback

    def add_feedback(
        self, consultation_id: int, *, user_name: str, helpful: bool, comment: str = ""
    ) -> int:
        """Record a user's feedback on their own consultation; returns the feedback's id."""
        _check_user_name(user_name)
        if not isinstance(helpful, bool):
            raise ValueError(f"helpful must be true or false, got {helpful!r}")
        if not isinstance(comment, str):
            raise ValueError("comment must be text")
        if len(comment) > FEEDBACK_COMMENT_MAX_LENGTH:
            raise ValueError(
                f"comment must be at most {FEEDBACK_COMMENT_MAX_LENGTH} characters, "
                f"got {len(comment)}"
            )
        with self.database.session() as session:
            consultation = _consultation_or_raise(session, consultation_id)
            if consultation.user_name != user_name:
                raise PermissionError(
                    f"user {user_name!r} cannot give feedback on consultation {consultation_id}, "
                    "which belongs to another user"
                )
            row = Feedback(
                consultation_id=consultation_id,
                user_name=user_name,
                helpful=helpful,
                comment=comment,
            )
            session.add(row)
            session.flush()
            _audit(
                session,
                user_name,
                "feedback.add",
                feedback_id=row.id,
                consultation_id=consultation_id,
                helpful=helpful,
            )
            return row.id

    def list_feedback(self, consultation_id: int) -> list[FeedbackRecord]:
        """Feedback on one consultation, oldest first."""
        query = (
            select(Feedback)
            .where(Feedback.consultation_id == consultation_id)
            .order_by(Feedback.id)
        )
        with self.database.session() as session:
            return [_to_feedback(row) for row in session.scalars(query)]

    # Users

    def add_user(self, name: str, role: str, password: str) -> None:
        _check_user_name(name, field="name")
        if role not in USER_ROLES:
            raise ValueError(f"role must be one of {', '.join(USER_ROLES)}, got {role!r}")
        if not isinstance(password, str) or len(password) < PASSWORD_MIN_LENGTH:
            raise ValueError(f"password must be at least {PASSWORD_MIN_LENGTH} characters")
        duplicate = ValueError(f"user {name!r} already exists")
        if self.get_user(name) is not None:
            raise duplicate
        password_hash = hash_password(password)
        try:
            with self.database.session() as session:
                session.add(User(name=name, role=role, password_hash=password_hash))
                _audit(session, name, "user.add", name=name, role=role)
        except IntegrityError as error:  # another process added the same name meanwhile
            raise duplicate from error

    def get_user(self, name: str) -> UserRecord | None:
        with self.database.session() as session:
            row = session.scalar(select(User).where(User.name == name))
            return _to_user(row) if row is not None else None

    def verify_user(self, name: str, password: str) -> UserRecord | None:
        """The user when `password` is theirs; None for a wrong password or an unknown name."""
        with self.database.session() as session:
            row = session.scalar(select(User).where(User.name == name))
        if row is None:
            verify_password(password, _unknown_user_hash())
            return None
        return _to_user(row) if verify_password(password, row.password_hash) else None

    def count_users(self) -> int:
        with self.database.session() as session:
            return session.scalar(select(func.count()).select_from(User)) or 0

    # Audit log

    def list_audit_log(self, limit: int = 100) -> list[AuditRecord]:
        """The newest audit entries first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        with self.database.session() as session:
            return [_to_audit(row) for row in session.scalars(query)]

    # Evaluation runs

    def add_evaluation_run(
        self,
        *,
        user_name: str,
        model: str,
        backend: str,
        backend_url: str | None,
        dataset: str,
        data_path: str,
        limit: int | None,
        template_id: str,
        template_version: str,
        generation_params: Mapping[str, Any],
        metrics: Mapping[str, Any],
        items: Sequence[Mapping[str, Any]],
    ) -> int:
        """Store a finished evaluation run; returns its id."""
        _check_user_name(user_name)
        table = EvaluationRun.__table__
        for field, value in (
            ("model", model),
            ("backend", backend),
            ("dataset", dataset),
            ("data_path", data_path),
            ("template_id", template_id),
            ("template_version", template_version),
        ):
            _check_text(field, value, table=table)
        _check_text("backend_url", backend_url, nullable=True, table=table)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a whole number of at least 1 or None, got {limit!r}")
        generation_params = _json_object("generation_params", generation_params)
        metrics = _json_object("metrics", metrics)
        items = _json_object_list("items", items)
        with self.database.session() as session:
            row = EvaluationRun(
                user_name=user_name,
                model=model,
                backend=backend,
                backend_url=backend_url,
                dataset=dataset,
                data_path=data_path,
                item_limit=limit,
                template_id=template_id,
                template_version=template_version,
                generation_params=generation_params,
                metrics=metrics,
                items=items,
            )
            session.add(row)
            session.flush()
            _audit(
                session,
                user_name,
                "evaluation.add",
                evaluation_run_id=row.id,
                dataset=dataset,
                model=model,
                backend=backend,
            )
            return row.id

    def get_evaluation_run(self, run_id: int) -> EvaluationRunRecord | None:
        with self.database.session() as session:
            row = session.get(EvaluationRun, run_id)
            if row is None:
                return None
            return EvaluationRunRecord(**_evaluation_run_fields(row), items=row.items)

    def list_evaluation_runs(self, limit: int = 50) -> list[EvaluationRunSummary]:
        """The newest runs first, without their items (which are never loaded here)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = (
            select(EvaluationRun)
            .options(defer(EvaluationRun.items, raiseload=True))
            .order_by(EvaluationRun.created_at.desc(), EvaluationRun.id.desc())
            .limit(limit)
        )
        with self.database.session() as session:
            return [EvaluationRunSummary(**_evaluation_run_fields(row)) for row in session.scalars(query)]
