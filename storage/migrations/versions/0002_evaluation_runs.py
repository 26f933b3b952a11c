"""Evaluation runs: benchmark scores of a model, kept so runs can be compared in the admin view.

Written by hand to match storage/models.py; tests/test_storage.py checks that they agree.

Revision ID: 0002
Revises: 0001
Create Date: 2025-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "evaluation_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("backend_url", sa.String(512), nullable=True),
        sa.Column("dataset", sa.String(32), nullable=False),
        sa.Column("data_path", sa.Text(), nullable=False),
        sa.Column("item_limit", sa.Integer(), nullable=True),
        sa.Column("template_id", sa.String(128), nullable=False),
        sa.Column("template_version", sa.String(32), nullable=False),
        sa.Column("generation_params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evaluation_runs"),
    )
    op.create_index("ix_evaluation_runs_dataset", "evaluation_runs", ["dataset"])


def downgrade() -> None:
    op.drop_index("ix_evaluation_runs_dataset", table_name="evaluation_runs")
    op.drop_table("evaluation_runs")
