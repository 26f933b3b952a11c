"""`python -m backend distill --config FILE.yaml [--dry-run]`."""

from __future__ import annotations

import argparse
import json

from backend.distill.config import load_config


def _distill(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from backend.distill.pipeline import plan

    if args.dry_run:
        print("\n".join(plan(config, args.config)))
        return 0
    from backend.distill.pipeline import run
    from backend.distill.progress import Stopped

    try:
        metrics = run(config, user_name=args.user)
    except Stopped as exc:
        print(f"stopped: {exc}")
        return 3
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0


def add_distill_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="fine-tune a teacher and distil it into a LoRA student (sequence- or logit-level), resumable",
        description="Runs the stages of one YAML config; rerun with the same config to resume.",
    )
    parser.add_argument("--config", required=True, help="YAML file of the run (see configs/distill-tiny-cpu.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved plan and commands, run nothing")
    parser.add_argument("--user", default="admin", help="who the stored run belongs to (default admin)")
    parser.set_defaults(run=_distill)

