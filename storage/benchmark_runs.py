"""Reading and writing benchmark runs (memory, serve, gpu) in the `benchmark_runs` table.

Kept beside `storage.repository.Store` rather than in it so benchmark code needs only this small
class. Same rules: input is checked before anything is written, each method is one transaction,
every write leaves an audit entry, and callers get frozen records, never ORM rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import BenchmarkRun
from storage.repository import _as_utc, _audit, _check_text, _check_user_name, _json_object

BENCHMARK_KINDS = ("memory", "serve", "gpu")


@dataclass(frozen=True)
class BenchmarkRunRecord:
    id: int
    user_name: str
    kind: str
    subject: str
    device: str
    results: dict[str, Any]
    created_at: datetime


def _to_record(row: BenchmarkRun) -> BenchmarkRunRecord:
    return BenchmarkRunRecord(
        id=row.id,
        user_name=row.user_name,
        kind=row.kind,
        subject=row.subject,
        device=row.device,
        results=row.results,
        created_at=_as_utc(row.created_at),
    )


def _check_kind(kind: Any) -> None:
    if kind not in BENCHMARK_KINDS:
        raise ValueError(f"kind must be one of {', '.join(BENCHMARK_KINDS)}, got {kind!r}")


class BenchmarkRunStore:
    """Benchmark runs in one database, so the admin view can set them beside accuracy runs."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, *, user_name: str, kind: str, subject: str, device: str, results: Mapping[str, Any]) -> int:
        """Store a finished benchmark run; returns its id."""
        _check_user_name(user_name)
        _check_kind(kind)
        table = BenchmarkRun.__table__
        for field, value in (("subject", subject), ("device", device)):
            _check_text(field, value, table=table)
            if not value.strip():
                raise ValueError(f"{field} must not be empty")
        results = _json_object("results", results)
        with self.database.session() as session:
            row = BenchmarkRun(user_name=user_name, kind=kind, subject=subject, device=device, results=results)
            session.add(row)
            session.flush()
            _audit(session, user_name, "benchmark.add", benchmark_run_id=row.id, kind=kind, subject=subject)
            return row.id

    def get(self, run_id: int) -> BenchmarkRunRecord | None:
        with self.database.session() as session:
            row = session.get(BenchmarkRun, run_id)
            return None if row is None else _to_record(row)

    def list(self, kind: str | None = None, limit: int = 50) -> list[BenchmarkRunRecord]:
        """The newest runs first, of one kind when `kind` is given."""
        if kind is not None:
            _check_kind(kind)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number of at least 1, got {limit!r}")
        query = select(BenchmarkRun).order_by(BenchmarkRun.created_at.desc(), BenchmarkRun.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(BenchmarkRun.kind == kind)
        with self.database.session() as session:
            return [_to_record(row) for row in session.scalars(query)]
