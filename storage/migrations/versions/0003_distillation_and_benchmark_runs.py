"""Distillation runs and benchmark runs, for the admin view's comparisons.

Written by hand to match storage/models.py; tests/test_storage.py checks that they agree.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "distillation_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("teacher", sa.String(512), nullable=False),
        sa.Column("student", sa.String(512), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("output_dir", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'complete', 'failed', 'stopped')", name="ck_distillation_runs_status_known"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_distillation_runs"),
    )
    op.create_index("ix_distillation_runs_name", "distillation_runs", ["name"])
    op.create_table(
        "benchmark_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("device", sa.String(255), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_benchmark_runs"),
    )
    op.create_index("ix_benchmark_runs_kind", "benchmark_runs", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_benchmark_runs_kind", table_name="benchmark_runs")
    op.drop_table("benchmark_runs")
    op.drop_index("ix_distillation_runs_name", table_name="distillation_runs")
    op.drop_table("distillation_runs")
