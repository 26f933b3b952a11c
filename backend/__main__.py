"""`python -m backend <command>`: the command line of MedLite's back end."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from backend.bench.memory import add_memory_command
from backend.bench.serve import add_serve_command
from backend.compress.cli import add_quantize_command
from backend.distill.cli import add_distill_command
from backend.evaluate.cli import add_evaluate_command


def _make_tiny_model(args: argparse.Namespace) -> int:
    from backend.tiny_model import make_tiny_model

    out = make_tiny_model(Path(args.out), layers=args.layers, hidden=args.hidden, vocab_size=args.vocab)
    print(f"tiny model written to {out}")
    return 0


def _users_add(args: argparse.Namespace) -> int:
    from backend.settings import Settings
    from storage.db import Database
    from storage.repository import Store

    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(Database.open(settings.resolved_database_url))
    store.add_user(args.name, args.role, password)
    print(f"user {args.name!r} added as {args.role}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    tiny = commands.add_parser(
        "make-tiny-model",
        help="build a tiny Qwen2-architecture model with an offline tokenizer and R1's chat template",
    )
    tiny.add_argument("--out", required=True, help="folder to write the model into")
    tiny.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    tiny.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    tiny.add_argument(
        "--vocab",
        type=int,
        default=2048,
        help="tokenizer vocabulary size (default 2048); a different size gives a model that shares no vocabulary",
    )
    tiny.set_defaults(run=_make_tiny_model)

    users = commands.add_parser("users", help="manage the people who may sign in")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    add = users_commands.add_parser("add", help="add a user; the password is read from stdin")
    add.add_argument("name", help="sign-in name")
    add.add_argument("--role", choices=("clinician", "admin"), required=True)
    add.set_defaults(run=_users_add)

    add_evaluate_command(commands)
    add_distill_command(commands)
    add_quantize_command(commands)
    bench = commands.add_parser("bench", help="memory and serving benchmarks; results are stored")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    add_memory_command(bench_commands)
    add_serve_command(bench_commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
