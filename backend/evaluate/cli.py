"""`python -m backend evaluate`: score a model on a medical QA benchmark, print, save and store it.

Exit codes: 0 the run finished and was stored (some items may still be errors, as reported);
1 the run finished but every item was an error, so nothing was measured (typically the server is
down or refuses every request); the run is still printed, written and stored so the failure is
on record; 2 bad input (data file, options, no model, database unreachable): one line naming the
problem, and nothing is run or stored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from backend.cli_types import CLI_USER, whole_number
from backend.evaluate.datasets import DATASET_NAMES
from backend.inference.engine import Engine, create_engine
from backend.settings import Settings

DEFAULT_TEMPERATURE = 0.6  # DeepSeek-R1's advice: lower temperatures make it repeat itself
DEFAULT_RETRIES = 2


_positive_int = whole_number(1)
_non_negative_int = whole_number(0)


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `evaluate` to the `python -m backend` command line."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on a medical QA benchmark (MedQA, PubMedQA, MedMCQA, MMLU, CMMLU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES, help="which benchmark the data is")
    parser.add_argument("--data", required=True, type=Path, help="the data file, or the folder that holds it")
    parser.add_argument(
        "--base-url",
        help="an OpenAI-compatible server, as MEDLITE_BACKEND_URL (e.g. http://127.0.0.1:8080/v1); "
        "without it the embedded engine runs on MEDLITE_MODEL",
    )
    parser.add_argument(
        "--model",
        help="the model to name in requests (default: the server's first listed model), "
        "or for the embedded engine a local folder or hub id (default: MEDLITE_MODEL)",
    )
    parser.add_argument("--limit", type=_positive_int, help="evaluate only the first N items")
    parser.add_argument(
        "--concurrency", type=_positive_int, help="requests in flight at once (default: MEDLITE_CONCURRENCY or 8)"
    )
    parser.add_argument(
        "--max-tokens", type=_positive_int, help="token limit per reply (default: MEDLITE_MAX_NEW_TOKENS or 1024)"
    )
    parser.add_argument(
        "--temperature", type=float, default=DEFAULT_TEMPERATURE, help=f"(default {DEFAULT_TEMPERATURE})"
    )
    parser.add_argument("--seed", type=int, help="sampling seed, for servers that honour one")
    parser.add_argument(
        "--retries",
        type=_non_negative_int,
        default=DEFAULT_RETRIES,
        help=f"retries of a failed request before it counts as an error (default {DEFAULT_RETRIES})",
    )
    parser.add_argument("--out", type=Path, help="write the full report, items included, to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run_evaluate_command)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def format_table(run: dict[str, Any]) -> str:
    """The run as an aligned plain-text table (the same numbers as the JSON)."""
    low, high = run["wilson_95"]
    latency, tokens = run["latency_s"], run["completion_tokens"]
    where = run["backend"] + (f" {run['backend_url']}" if run["backend_url"] else "")
    rows = [
        ("dataset", f"{run['dataset']} ({run['data_path']})"),
        ("model", f"{run['model']} [{where}]"),
        ("template", ", ".join(f"{tid} {version}" for tid, version in run["templates"].items())),
        ("items (n)", str(run["n"])),
        ("correct", str(run["correct"])),
        ("wrong", str(run["wrong"])),
        ("parse failures", str(run["parse_failures"])),
        ("cut at token limit", str(run.get("truncated", 0))),
        ("errors", str(run["errors"])),
        ("accuracy", f"{_percent(run['accuracy'])}  (correct / n; parse failures and errors count in n)"),
        ("95% Wilson", f"{_percent(low)} - {_percent(high)}"),
        (
            "latency s",
            "  ".join(f"{k} {_number(latency[k])}" for k in ("mean", "p50", "p95", "max")),
        ),
        (
            "completion tokens",
            "  ".join(f"{k} {_number(tokens[k], 1)}" for k in ("mean", "p50", "p95", "max", "total")),
        ),
        ("wall time s", f"{run['wall_time_s']:.2f}  (concurrency {run['concurrency']})"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    if run["per_subject"]:
        subject_width = max(len("subject"), *(len(s) for s in run["per_subject"]))
        lines += ["", f"{'subject':<{subject_width}}  {'n':>5}  {'correct':>7}  {'accuracy':>8}"]
        for subject, scores in run["per_subject"].items():
            lines.append(
                f"{subject:<{subject_width}}  {scores['n']:>5}  {scores['correct']:>7}  "
                f"{_percent(scores['accuracy']):>8}"
            )
    return "\n".join(lines)


def _create_engine(args: argparse.Namespace, settings: Settings) -> Engine:
    """The engine for --base-url (or the embedded one on --model / MEDLITE_MODEL).

    The runner retries whole items with back-off itself, so the engine's own retries are off.
    """
    chosen = dataclasses.replace(settings, backend_url=args.base_url or None, model=args.model or settings.model)
    return create_engine(chosen, remote_retries=0)


def _write_json(path: Path | None, run: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(run, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def run_evaluate_command(args: argparse.Namespace) -> int:
    # Imported here so that `python -m backend --help` stays fast.
    from backend.evaluate.datasets import load_dataset
    from backend.evaluate.runner import run_evaluation
    from backend.inference.types import GenerationParams
    from storage.db import Database
    from storage.repository import Store

    settings = Settings.from_env()
    params = GenerationParams(
        temperature=args.temperature,
        max_tokens=args.max_tokens or settings.max_new_tokens,
        seed=args.seed,
    )
    items = load_dataset(args.dataset, args.data, limit=args.limit)
    if not items:
        raise ValueError(f"{args.data}: no {args.dataset} items to evaluate")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    engine = _create_engine(args, settings)
    if engine.name == "unavailable":
        raise RuntimeError(engine.status())
    # Opened before the run, so an unreachable database fails in seconds, not after the run.
    database = Database.open(settings.resolved_database_url)
    try:
        created_at = datetime.now(timezone.utc)
        report = run_evaluation(
            items,
            engine,
            concurrency=args.concurrency or settings.concurrency,
            params=params,
            retries=args.retries,
            progress=not args.no_progress,
        )
        items_out = [dataclasses.asdict(item) for item in report.items]
        run = {
            "run_id": None,
            "model": engine.model or "unknown",
            "backend": engine.name,
            "backend_url": engine.url,
            "dataset": args.dataset,
            "data_path": str(args.data.resolve()),
            "limit": args.limit,
            "created_at": created_at.isoformat(),
            **report.metrics(),
            "items": items_out,
        }
        # Written before storing, so a failure to store loses nothing measured.
        _write_json(args.out, run)
        metrics = report.metrics()
        run["run_id"] = Store(database).add_evaluation_run(
            user_name=CLI_USER,
            model=run["model"],
            backend=run["backend"],
            backend_url=run["backend_url"],
            dataset=args.dataset,
            data_path=run["data_path"],
            limit=args.limit,
            # A run whose items span languages used one exam template per language.
            template_id=",".join(report.templates),
            template_version=",".join(report.templates.values()),
            generation_params=metrics.pop("generation_params"),
            metrics=metrics,
            items=items_out,
        )
        _write_json(args.out, run)
    finally:
        database.close()
    print(format_table(run))
    print(f"\nstored as evaluation run {run['run_id']}" + (f"; report written to {args.out}" if args.out else ""))
    if report.errors == report.n:
        print(f"error: every item failed; first error: {report.items[0].error}", file=sys.stderr)
        return 1
    return 0
