"""`python -m backend bench serve`: how fast MedLite answers many clinicians at once.

For each model (`--model`, repeatable, e.g. a bf16 folder and its 4-bit copy) and each
concurrency N, N requests arrive together and are answered in each batching mode:

- sequential: the embedded engine answers one request at a time (the baseline);
- batched: the embedded engine's step-by-step batching, all N streams at once;
- remote: N concurrent streams to the OpenAI-compatible server at `--base-url`, when given.

Figures, all from the same run:
- time to first token (TTFT): from the moment the N requests arrived to a request's first text,
  so a request that waits its turn counts its wait (median and p95 over the requests);
- inter-token latency (ITL): per request, the time from its first text to its last divided by the
  tokens after the first (median and p95 over the requests);
- aggregate tokens/s: all completion tokens over the time from arrival to the last reply's end;
- speedup_vs_sequential: aggregate tokens/s over the same model's sequential tokens/s at that N.

Request i of a run uses seed i in every mode, so each mode generates the same replies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.cli_types import whole_number
from backend.inference.types import GenerationParams

MODES = ("sequential", "batched", "remote")
QUESTIONS = (
    "A 45-year-old man has crushing chest pain radiating to the left arm. What is the most likely diagnosis?",
    "What is the first-line treatment for uncomplicated hypertension in adults?",
    "Fever, productive cough and shortness of breath for three days: which tests come first?",
    "Is metformin safe in severe renal impairment?",
    "Which antibiotics interact with warfarin?",
    "A child has a barking cough, stridor and a low-grade fever. What is the likely cause?",
    "She is 32 weeks pregnant with headache, visual changes and proteinuria. What is the next step?",
    "An elderly woman fell and has a shortened, externally rotated leg. What is the injury?",
    "患者男性，45岁，胸痛两小时，伴出汗、恶心。最可能的诊断是什么？",
    "发热、咳嗽、咳痰三天，右下肺湿啰音，下一步如何处理？",
    "What dose of paracetamol is safe for an adult with liver disease?",
    "Elevated troponin and ST elevation in leads II, III and aVF: which artery is blocked?",
    "Which symptoms of a headache need emergency care?",
    "How should anaphylaxis be treated in the emergency department?",
    "What are the signs of sepsis in an elderly patient?",
    "When should a patient with asthma use a spacer?",
)


@dataclass(frozen=True)
class RequestTiming:
    """One streamed reply, timed from the moment its batch of requests arrived."""

    first_text_s: float | None  # None when the reply carried no text
    last_text_s: float | None
    completion_tokens: int


def parse_concurrency(text: str) -> list[int]:
    """`1,4,16` -> [1, 4, 16]; argparse shows the ValueError's message for --concurrency."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--concurrency takes whole numbers separated by commas, got {text!r}")
    if not levels or any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError(f"--concurrency needs numbers of at least 1, got {text!r}")
    return sorted(set(levels))


def _timed_stream(engine: Any, prompt: str, params: GenerationParams, arrived: float) -> RequestTiming:
    first = last = None
    chunks = 0
    completion_tokens = None
    for delta in engine.stream(prompt, params):
        now = time.perf_counter() - arrived
        if delta.kind == "usage":
            completion_tokens = delta.completion_tokens
        elif delta.text:
            first = now if first is None else first
            last = now
            chunks += 1
    # A server that reports no usage streams about one token per chunk.
    return RequestTiming(first, last, completion_tokens if completion_tokens is not None else chunks)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]  # nearest rank
    return {"median": statistics.median(ordered), "p95": p95}


def answer_together(
    engine: Any, *, concurrency: int, max_new_tokens: int, one_at_a_time: bool
) -> tuple[list[RequestTiming], float]:
    """Answer `concurrency` requests that arrive together; returns their timings and the wall time."""
    prompts = [QUESTIONS[index % len(QUESTIONS)] for index in range(concurrency)]
    params = [GenerationParams(max_tokens=max_new_tokens, seed=index) for index in range(concurrency)]
    arrived = time.perf_counter()
    if one_at_a_time:
        timings = [_timed_stream(engine, prompt, p, arrived) for prompt, p in zip(prompts, params)]
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            timings = list(pool.map(lambda job: _timed_stream(engine, job[0], job[1], arrived), zip(prompts, params)))
    return timings, time.perf_counter() - arrived


def summarise(concurrency: int, timings: list[RequestTiming], wall_s: float, repeats: int) -> dict[str, Any]:
    """The figures for one table row, pooled over `repeats` rounds of `concurrency` requests."""
    tokens = sum(timing.completion_tokens for timing in timings)
    inter_token = [
        (timing.last_text_s - timing.first_text_s) / (timing.completion_tokens - 1)
        for timing in timings
        if timing.first_text_s is not None and timing.last_text_s is not None and timing.completion_tokens > 1
    ]
    return {
        "concurrency": concurrency,
        "repeats": repeats,
        "requests": len(timings),
        "completion_tokens": tokens,
        "wall_s": wall_s,
        "ttft_s": _percentiles([t.first_text_s for t in timings if t.first_text_s is not None]),
        "itl_s": _percentiles(inter_token),
        "tokens_per_s": tokens / wall_s if wall_s > 0 else None,
    }


def scheme_of(model_dir: Path) -> str:
    """The weight scheme a model folder holds, from its config: a quantisation method or the dtype."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    quantization = config.get("quantization_config")
    if quantization:
        if quantization.get("load_in_4bit") and quantization.get("bnb_4bit_quant_type"):
            return str(quantization["bnb_4bit_quant_type"])
        return str(quantization.get("quant_method", "quantized"))
    return str(config.get("dtype") or config.get("torch_dtype") or "unknown dtype")


def run_serve_benchmark(
    models: list[Path],
    *,
    concurrency: list[int],
    max_new_tokens: int,
    base_url: str | None = None,
    remote_model: str | None = None,
    max_batch_size: int | None = None,
    repeats: int = 3,
) -> dict[str, Any]:
    """Every mode at every concurrency for every model; returns the report written as JSON.

    The modes take turns within each of the `repeats` rounds, so a load that comes and goes on a
    shared machine falls on all of them alike; each row pools its rounds."""
    from backend.inference.embedded import EmbeddedEngine
    from backend.inference.remote import RemoteEngine

    batch_size = max_batch_size or max(concurrency)
    runs: list[dict[str, Any]] = []
    subjects: list[dict[str, Any]] = []
    for model_dir in models:
        engine = EmbeddedEngine(str(model_dir), max_batch_size=batch_size)
        model, _ = engine.load()
        subjects.append(
            {
                "model": str(model_dir),
                "scheme": scheme_of(model_dir),
                "parameters": sum(parameter.numel() for parameter in model.parameters()),
                "attn_implementation": engine.attn_implementation,
                "device": str(model.device),
                "max_batch_size": batch_size,
            }
        )
        modes = {"sequential": True, "batched": False}
        answer_together(engine, concurrency=1, max_new_tokens=4, one_at_a_time=True)  # warm-up, not reported
        for level in concurrency:
            pooled: dict[str, tuple[list[RequestTiming], float]] = {mode: ([], 0.0) for mode in modes}
            for _ in range(repeats):
                for mode, one_at_a_time in modes.items():
                    timings, wall_s = answer_together(
                        engine, concurrency=level, max_new_tokens=max_new_tokens, one_at_a_time=one_at_a_time
                    )
                    pooled[mode] = (pooled[mode][0] + timings, pooled[mode][1] + wall_s)
            for mode, (timings, wall_s) in pooled.items():
                figures = summarise(level, timings, wall_s, repeats)
                runs.append({"model": str(model_dir), "scheme": subjects[-1]["scheme"], "mode": mode, **figures})
    if base_url:
        remote = RemoteEngine(base_url, model=remote_model, max_retries=0)
        answer_together(remote, concurrency=1, max_new_tokens=4, one_at_a_time=True)
        for level in concurrency:
            timings, wall_s = [], 0.0
            for _ in range(repeats):
                more, seconds = answer_together(
                    remote, concurrency=level, max_new_tokens=max_new_tokens, one_at_a_time=False
                )
                timings, wall_s = timings + more, wall_s + seconds
            figures = summarise(level, timings, wall_s, repeats)
            runs.append({"model": remote.model or base_url, "scheme": "served", "mode": "remote", **figures})
    _add_speedups(runs)
    return {
        "kind": "serve",
        "max_new_tokens": max_new_tokens,
        "concurrency": concurrency,
        "repeats": repeats,
        "base_url": base_url,
        "models": subjects,
        "runs": runs,
    }


def _add_speedups(runs: list[dict[str, Any]]) -> None:
    """speedup_vs_sequential: tokens/s over the sequential tokens/s at the same concurrency (of the
    same model; remote runs against the first model's, the embedded baseline on this machine)."""
    sequential = {
        (run["model"], run["concurrency"]): run["tokens_per_s"] for run in runs if run["mode"] == "sequential"
    }
    first_model = next((run["model"] for run in runs if run["mode"] == "sequential"), None)
    for run in runs:
        model = first_model if run["mode"] == "remote" else run["model"]
        baseline = sequential.get((model, run["concurrency"]))
        run["speedup_vs_sequential"] = run["tokens_per_s"] / baseline if baseline and run["tokens_per_s"] else None


def format_table(report: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.1f}"

    lines = [
        f"bench serve: at most {report['max_new_tokens']} new tokens per request, {report['repeats']} rounds "
        "per row; times in ms from arrival"
    ]
    for subject in report["models"]:
        lines.append(
            f"  {subject['model']}: {subject['scheme']}, {subject['parameters']:,} parameters, "
            f"{subject['attn_implementation']} attention on {subject['device']}, max batch {subject['max_batch_size']}"
        )
    header = (
        f"{'model':<28} {'mode':<10} {'conc':>4} {'tokens':>6} {'wall s':>7} {'TTFT med':>9} {'TTFT p95':>9} "
        f"{'ITL med':>8} {'ITL p95':>8} {'tok/s':>8} {'speedup':>8}"
    )
    lines += [header, "-" * len(header)]
    for run in report["runs"]:
        speedup = run["speedup_vs_sequential"]
        lines.append(
            f"{Path(run['model']).name[-28:]:<28} {run['mode']:<10} {run['concurrency']:>4} "
            f"{run['completion_tokens']:>6} {run['wall_s']:>7.2f} {ms(run['ttft_s']['median']):>9} "
            f"{ms(run['ttft_s']['p95']):>9} {ms(run['itl_s']['median']):>8} {ms(run['itl_s']['p95']):>8} "
            f"{run['tokens_per_s']:>8.1f} {'n/a' if speedup is None else f'{speedup:.2f}x':>8}"
        )
    return "\n".join(lines)


def run_serve_command(args: argparse.Namespace) -> int:
    from backend.bench.memory import describe_device
    from backend.bench.results import save_report
    from backend.settings import Settings
    from storage.db import Database

    for model_dir in args.model:
        if not (model_dir / "config.json").is_file():
            raise ValueError(f"--model {model_dir} is not a model folder (no config.json in it)")
    # Opened before measuring, so an unreachable database fails in seconds, not after the run.
    database = Database.open(Settings.from_env().resolved_database_url)
    try:
        report = run_serve_benchmark(
            args.model,
            concurrency=args.concurrency,
            max_new_tokens=args.max_new_tokens,
            base_url=args.base_url,
            remote_model=args.remote_model,
            max_batch_size=args.max_batch_size,
            repeats=args.repeats,
        )
        report["device"] = describe_device()
        print(format_table(report))
        subject = ", ".join(str(model_dir) for model_dir in args.model)
        save_report(database, report, kind="serve", subject=subject, out=args.out)
    finally:
        database.close()
    return 0


def add_serve_command(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "serve",
        help="time to first token, inter-token latency and tokens/s: sequential, batched and remote",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", type=Path, action="append", required=True, help="model folder; repeat to compare schemes"
    )
    parser.add_argument("--base-url", help="also measure this OpenAI-compatible server (e.g. http://tgi:8080/v1)")
    parser.add_argument("--remote-model", help="the model name the server at --base-url expects (default: its first)")
    parser.add_argument(
        "--concurrency", type=parse_concurrency, default=[1, 4, 16], help="requests arriving together (default 1,4,16)"
    )
    parser.add_argument("--max-new-tokens", type=whole_number(1), default=64, help="token limit per reply (default 64)")
    parser.add_argument("--max-batch-size", type=whole_number(1), help="rows in one forward pass (default: the top concurrency)")
    parser.add_argument("--repeats", type=whole_number(1), default=3, help="rounds per row, modes taking turns (default 3)")
    parser.add_argument("--out", type=Path, help="write the report to this JSON file")
    parser.set_defaults(run=run_serve_command)
