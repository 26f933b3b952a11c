"""GPU benchmark on the real DeepSeek-R1-Distill-Qwen-7B shape with random weights: bf16 against 4-bit.

    python -m backend.bench.gpu_7b [--out FILE.json] [--schemes bf16,nf4,w4a16] [--config SHAPE]

Nothing is downloaded: the model is built from the shipped shape with random weights, once per
scheme, straight on the device. Per scheme it measures batch-1 latency (time to first token and
per-token decode over a fixed number of new tokens), 16-way throughput (one batch of 16 prompts),
and peak allocated memory, then prints ratios against bf16, all measured in this one run.
Sized for under 10 minutes on one H100/H200 (three schemes, each a few seconds to build and well
under a minute to time).

Schemes:
- bf16: the model as shipped.
- nf4: every linear layer but the head as bitsandbytes `Linear4bit` (NF4, double quantisation,
  bf16 compute), as transformers' BitsAndBytesConfig makes it.
- w4a16: every linear layer but the head as symmetric int4, one bf16 scale per group of 128
  inputs (the W4A16 layout), run by PyTorch's own int4 weight-only kernel (`_weight_int4pack_mm`,
  tinygemm). vLLM and TGI run the same layout with Marlin kernels, which plain PyTorch lacks.

Generation is greedy with a fixed number of new tokens (`min_new_tokens`), so random weights time
the same work as trained ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

SCHEMES = ("bf16", "nf4", "w4a16")
GROUP_SIZE = 128
INNER_K_TILES = 8  # tinygemm's packing: inputs must be a multiple of INNER_K_TILES * 16


@dataclass(frozen=True)
class Plan:
    config: str = "deepseek-r1-distill-qwen-7b"
    schemes: tuple[str, ...] = SCHEMES
    prompt_tokens: int = 128
    new_tokens: int = 64
    batch: int = 16
    repeats: int = 3
    device: str = "cuda"


def parse_schemes(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SCHEMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"schemes must be a comma-separated subset of {','.join(SCHEMES)}")
    return names


# ---------------------------------------------------------------- int4 weight-only (W4A16)


def quantize_int4_symmetric(weight: Any, group_size: int = GROUP_SIZE) -> tuple[Any, Any]:
    """(codes 0..15 as int32 [out, in], bf16-ready fp32 scales [out, in/group]); w ~ (code - 8) * scale."""
    import torch

    rows, columns = weight.shape
    if columns % group_size:
        raise ValueError(f"a layer with {columns} inputs cannot be split into groups of {group_size}")
    grouped = weight.float().reshape(rows, columns // group_size, group_size)
    scales = (grouped.abs().amax(dim=-1, keepdim=True) / 7).clamp(min=torch.finfo(torch.float32).tiny)
    codes = (torch.round(grouped / scales) + 8).clamp(0, 15).to(torch.int32)
    return codes.reshape(rows, columns), scales.reshape(rows, columns // group_size)


def dequantize_int4_symmetric(codes: Any, scales: Any, group_size: int = GROUP_SIZE) -> Any:
    rows, columns = codes.shape
    grouped = (codes.float() - 8).reshape(rows, columns // group_size, group_size)
    return (grouped * scales.unsqueeze(-1)).reshape(rows, columns)


def tinygemm_scales_and_zeros(scales: Any) -> Any:
    """tinygemm's [groups, out, 2] bf16 tensor; zero 0 makes its (code - 8) * scale + zero symmetric."""
    import torch

    return torch.stack([scales, torch.zeros_like(scales)], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)


def _int4_linear_class() -> type:
    import torch
    from torch import nn

    class Int4WeightOnlyLinear(nn.Module):
        """A linear layer whose weights are int4 (group 128, bf16 scales) and activations bf16."""

        def __init__(self, linear: nn.Linear) -> None:
            super().__init__()
            codes, scales = quantize_int4_symmetric(linear.weight.data)
            self.out_features = linear.out_features
            self.on_cpu = linear.weight.device.type == "cpu"
            if self.on_cpu:
                packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, INNER_K_TILES)
            else:
                pairs = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
                packed = torch.ops.aten._convert_weight_to_int4pack(pairs, INNER_K_TILES)
            self.register_buffer("packed", packed)
            self.register_buffer("scales_and_zeros", tinygemm_scales_and_zeros(scales))
            self.bias = None if linear.bias is None else nn.Parameter(linear.bias.data, requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
            if self.on_cpu:
                out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, GROUP_SIZE, self.scales_and_zeros)
            else:
                out = torch.ops.aten._weight_int4pack_mm(flat, self.packed, GROUP_SIZE, self.scales_and_zeros)
            if self.bias is not None:
                out = out + self.bias
            return out.reshape(*x.shape[:-1], self.out_features)

    return Int4WeightOnlyLinear


def _replace_linears(model: Any, make: Callable[[Any], Any]) -> None:
    """Swap every nn.Linear but the head for make(linear), freeing the bf16 weights as it goes."""
    from torch import nn

    head = model.get_output_embeddings()
    targets = [
        (name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear) and module is not head
    ]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, make(linear))


def _to_nf4(linear: Any) -> Any:
    import bitsandbytes as bnb
    import torch

    device = linear.weight.device
    quantized = bnb.nn.Linear4bit(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        compute_dtype=torch.bfloat16,
        compress_statistics=True,
        quant_type="nf4",
        device="meta",
    )
    quantized.weight = bnb.nn.Params4bit(
        linear.weight.data.to("cpu"), requires_grad=False, compress_statistics=True, quant_type="nf4"
    )
    if linear.bias is not None:
        quantized.bias = torch.nn.Parameter(linear.bias.data, requires_grad=False)
    return quantized.to(device)  # bitsandbytes quantises on the move to the device


def convert(model: Any, scheme: str) -> None:
    if scheme == "nf4":
        _replace_linears(model, _to_nf4)
    elif scheme == "w4a16":
        _replace_linears(model, _int4_linear_class())


# ---------------------------------------------------------------- measuring


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(device: str, run: Callable[[], Any]) -> float:
    _synchronize(device)
    start = time.perf_counter()
    run()
    _synchronize(device)
    return time.perf_counter() - start


def _generate(model: Any, prompts: Any, new_tokens: int) -> Any:
    return model.generate(
        input_ids=prompts,
        attention_mask=prompts.new_ones(prompts.shape),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=0,
    )


def weight_bytes(model: Any) -> int:
    """Bytes of every distinct parameter and buffer, bitsandbytes' quantisation statistics included."""
    seen: set[int] = set()
    total = 0
    tensors = list(model.parameters()) + list(model.buffers())
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if state is not None:
            tensors += [state.absmax, state.code]
            if state.state2 is not None:
                tensors += [state.state2.absmax, state.state2.code]
    for tensor in tensors:
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.nbytes
    return total


def measure_scheme(scheme: str, plan: Plan, config: Any) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(plan.device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval()
    convert(model, scheme)
    on_gpu = plan.device.startswith("cuda")
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    generator = torch.Generator().manual_seed(1)
    vocab = config.vocab_size
    one = torch.randint(1, vocab, (1, plan.prompt_tokens), generator=generator).to(plan.device)
    many = torch.randint(1, vocab, (plan.batch, plan.prompt_tokens), generator=generator).to(plan.device)
    with torch.inference_mode():
        _generate(model, one, 2)  # warm-up: kernels load, caches allocate
        first = [_timed(plan.device, partial(_generate, model, one, 1)) for _ in range(plan.repeats)]
        full = [_timed(plan.device, partial(_generate, model, one, plan.new_tokens)) for _ in range(plan.repeats)]
        batch = [_timed(plan.device, partial(_generate, model, many, plan.new_tokens)) for _ in range(plan.repeats)]
    time_to_first = statistics.median(first)
    result = {
        "weight_bytes": weight_bytes(model),
        "time_to_first_token_s": time_to_first,
        "decode_s_per_token": (statistics.median(full) - time_to_first) / (plan.new_tokens - 1),
        "batch1_tokens_per_s": plan.new_tokens / statistics.median(full),
        f"batch{plan.batch}_tokens_per_s": plan.batch * plan.new_tokens / statistics.median(batch),
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if on_gpu else None,
    }
    del model
    if on_gpu:
        torch.cuda.empty_cache()
    return result


def add_ratios(results: dict[str, dict[str, Any]], batch: int) -> None:
    """Each scheme's figures against bf16's from the same run (decode ratio 0.88 or lower is the target)."""
    base = results.get("bf16")
    if base is None or "error" in base:
        return
    throughput = f"batch{batch}_tokens_per_s"
    for entry in results.values():
        if "error" in entry:
            continue
        entry["decode_latency_vs_bf16"] = entry["decode_s_per_token"] / base["decode_s_per_token"]
        entry["throughput_vs_bf16"] = entry[throughput] / base[throughput]
        entry["weight_bytes_vs_bf16"] = entry["weight_bytes"] / base["weight_bytes"]
        if entry["peak_memory_bytes"] and base["peak_memory_bytes"]:
            entry["peak_memory_vs_bf16"] = entry["peak_memory_bytes"] / base["peak_memory_bytes"]


def format_table(report: dict[str, Any]) -> str:
    batch = report["plan"]["batch"]
    lines = [
        f"{report['shape']} on {report['device']}: prompt {report['plan']['prompt_tokens']} tokens, "
        f"{report['plan']['new_tokens']} new tokens, median of {report['plan']['repeats']}",
        f"{'scheme':<7} {'weights GiB':>11} {'peak GiB':>9} {'TTFT ms':>8} {'decode ms/tok':>14} "
        f"{'b1 tok/s':>9} {f'b{batch} tok/s':>10} {'decode/bf16':>12} {f'b{batch}/bf16':>9} {'mem/bf16':>9}",
    ]
    for scheme, entry in report["schemes"].items():
        if "error" in entry:
            lines.append(f"{scheme:<7} failed: {entry['error']}")
            continue

        def ratio(key: str) -> str:
            return f"{entry[key]:.3f}" if key in entry else "n/a"

        peak = entry["peak_memory_bytes"]
        lines.append(
            f"{scheme:<7} {entry['weight_bytes'] / 1024**3:>11.2f} {'n/a' if peak is None else f'{peak / 1024**3:.2f}':>9} "
            f"{entry['time_to_first_token_s'] * 1000:>8.1f} {entry['decode_s_per_token'] * 1000:>14.2f} "
            f"{entry['batch1_tokens_per_s']:>9.1f} {entry[f'batch{batch}_tokens_per_s']:>10.1f} "
            f"{ratio('decode_latency_vs_bf16'):>12} {ratio('throughput_vs_bf16'):>9} {ratio('peak_memory_vs_bf16'):>9}"
        )
    return "\n".join(lines)


def run(plan: Plan) -> dict[str, Any]:
    import torch

    from backend.bench.memory import load_shape

    shape = load_shape(plan.config)
    device = torch.cuda.get_device_name(0) if plan.device.startswith("cuda") else plan.device
    results: dict[str, dict[str, Any]] = {}
    for scheme in plan.schemes:
        started = time.perf_counter()
        try:
            results[scheme] = measure_scheme(scheme, plan, shape.config)
        except Exception as error:  # one scheme's failure (a missing kernel) must not lose the others
            results[scheme] = {"error": f"{type(error).__name__}: {error}"}
        results[scheme]["wall_s"] = time.perf_counter() - started
        print(f"{scheme}: done in {results[scheme]['wall_s']:.0f} s", flush=True)
    add_ratios(results, plan.batch)
    return {
        "shape": shape.name,
        "device": device,
        "torch": torch.__version__,
        "plan": {k: getattr(plan, k) for k in ("prompt_tokens", "new_tokens", "batch", "repeats")},
        "schemes": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.bench.gpu_7b", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=Plan.config, help="a shipped shape, config JSON or model folder")
    parser.add_argument("--schemes", type=parse_schemes, default=SCHEMES, help="comma-separated (default all)")
    parser.add_argument("--prompt-tokens", type=int, default=Plan.prompt_tokens)
    parser.add_argument("--new-tokens", type=int, default=Plan.new_tokens)
    parser.add_argument("--batch", type=int, default=Plan.batch)
    parser.add_argument("--repeats", type=int, default=Plan.repeats)
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu runs a small shape as a smoke test")
    parser.add_argument("--out", type=Path, help="write the report to this JSON file")
    args = parser.parse_args(argv)
    if args.new_tokens < 2:
        parser.error("--new-tokens must be at least 2 (decode time is measured past the first token)")
    plan = Plan(args.config, args.schemes, args.prompt_tokens, args.new_tokens, args.batch, args.repeats, args.device)
    report = run(plan)
    print(format_table(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
