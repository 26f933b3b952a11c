"""What every benchmark command does with its report: write it as JSON and store it for the admin view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.cli_types import CLI_USER
from storage.benchmark_runs import BenchmarkRunStore
from storage.db import Database


def save_report(database: Database, report: dict[str, Any], *, kind: str, subject: str, out: Path | None) -> int:
    """Write `report` to `out` (when given) before storing it, so a storage failure loses nothing measured."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    report["run_id"] = BenchmarkRunStore(database).add(
        user_name=CLI_USER, kind=kind, subject=subject, device=report["device"], results=report
    )
    print(f"stored as benchmark run {report['run_id']}")
    return report["run_id"]
