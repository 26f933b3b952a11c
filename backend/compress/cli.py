"""`python -m backend quantize`: write a 4-bit checkpoint of a model folder, with its card."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.cli_types import whole_number
from backend.compress.quantize import DEFAULT_CALIBRATION_DATA, METHODS

_positive_int = whole_number(1)


def run_quantize_command(args: argparse.Namespace) -> int:
    # Imported here so that `python -m backend --help` stays fast.
    from backend.compress.quantize import format_size, quantize

    options = {}
    if args.method == "w4a16":
        options = {
            "calibration_data": args.calibration_data,
            "samples": args.calibration_samples,
            "max_seq_length": args.max_seq_length,
        }
    result = quantize(args.model, args.out, args.method, **options)
    print(format_size(result))
    return 0


def add_quantize_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="write a 4-bit checkpoint (bitsandbytes NF4 or GPTQ W4A16) of a model folder, with a card",
        description=(
            "nf4: bitsandbytes NF4 with double quantisation and bf16 compute, loadable by transformers. "
            "w4a16: GPTQ through llm-compressor (run in .venv-quantize), calibrated on medical prompts "
            "rendered by the templates, loadable by vLLM, TGI and SGLang with fast kernels."
        ),
    )
    parser.add_argument("--model", required=True, type=Path, help="the unquantised model folder")
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("--out", required=True, type=Path, help="a new folder for the quantised checkpoint")
    parser.add_argument(
        "--calibration-data",
        type=Path,
        default=DEFAULT_CALIBRATION_DATA,
        help=f"w4a16: the medical data folder (default {DEFAULT_CALIBRATION_DATA})",
    )
    parser.add_argument(
        "--calibration-samples", type=_positive_int, default=64, help="w4a16: prompts to calibrate on (default 64)"
    )
    parser.add_argument(
        "--max-seq-length", type=_positive_int, default=512, help="w4a16: tokens per calibration prompt (default 512)"
    )
    parser.set_defaults(run=run_quantize_command)
