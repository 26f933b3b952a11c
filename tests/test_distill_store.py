"""Distillation runs round-trip through the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from storage.db import Database
from storage.distillation_runs import DistillationRunStore
from storage.repository import RecordNotFound


def test_a_run_is_started_finished_and_listed(database: Database) -> None:
    runs = DistillationRunStore(database)
    run_id = runs.start(
        user_name="admin", name="tiny", teacher="t", student="s", config={"method": "sequence"}, output_dir="/x"
    )
    started = runs.get(run_id)
    assert started is not None and started.status == "running" and started.finished_at is None
    metrics = {"transfer": {"student_after": {"agreement": 0.9}}}
    runs.finish(run_id, status="complete", metrics=metrics)
    finished = runs.get(run_id)
    assert finished.status == "complete" and finished.metrics == metrics and finished.finished_at is not None
    assert finished.config == {"method": "sequence"}
    other = runs.start(user_name="admin", name="second", teacher="t", student="s", config={}, output_dir="/y")
    assert [run.id for run in runs.list()] == [other, run_id]


def test_bad_input_is_refused_naming_the_field(database: Database) -> None:
    runs = DistillationRunStore(database)
    with pytest.raises(ValueError, match="name"):
        runs.start(user_name="admin", name="", teacher="t", student="s", config={}, output_dir="/x")
    run_id = runs.start(user_name="admin", name="n", teacher="t", student="s", config={}, output_dir="/x")
    with pytest.raises(ValueError, match="status must be one of complete, failed, stopped"):
        runs.finish(run_id, status="done")
    with pytest.raises(RecordNotFound):
        runs.finish(run_id + 100, status="failed", error="boom")
    assert runs.get(run_id).status == "running"
