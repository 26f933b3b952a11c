"""`python -m backend bench memory`: a model's weight bytes under each 4-bit scheme.

The figures are computed exactly from the parameter shapes (the model is built on PyTorch's meta
device, so no memory is used and any architecture transformers knows works) and from each scheme's
storage layout, as read in the libraries' source:

- bf16: two bytes per parameter, the checkpoint as shipped.
- nf4 (bitsandbytes 0.50 `Linear4bit`, what transformers' `BitsAndBytesConfig(load_in_4bit=True,
  bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)` makes of every `nn.Linear` but the
  head): per layer, 4-bit codes two to a byte; one absmax per 64 weights, itself quantised to 8 bits
  (double quantisation) with one fp32 absmax per 256 of those blocks; the 16-entry fp32 NF4 code and
  the 256-entry fp32 code of the nested quantisation, both saved with every layer. The offset and
  shape live in a small JSON blob per layer (`quant_state.bitsandbytes__nf4`), counted as metadata,
  not weights. Embeddings, head, norms and biases stay bf16.
- nf4 + int8 embeddings and head: as nf4, with bitsandbytes' LLM.int8 row-wise layout for the
  embedding table (`Embedding8bit`) and the head (`Linear8bitLt`): one int8 per weight and one fp32
  scale per row. In memory only: bitsandbytes cannot save these embedding modules.
- nf4 + nf4 embeddings and head: the embedding as `EmbeddingNF4` (4-bit codes, one fp32 absmax per
  64, no double quantisation) and the head as another double-quantised `Linear4bit`. In memory only.
- w4a16 (llm-compressor's preset W4A16, saved by compressed-tensors as "pack-quantized"): every
  `nn.Linear` but lm_head as int32 words holding eight 4-bit values, one bf16 scale per group of 128
  inputs and an int64 pair with the original shape. The preset is symmetric, so no zero points are
  stored (an asymmetric scheme would add one packed 4-bit zero point per group). Needs the inputs of
  every layer to be a multiple of 128.
- gguf-q4_k_m (llama.cpp's `llama-quantize ... Q4_K_M`, rule read in src/llama-quant.cpp): 2-D
  weights in Q4_K super-blocks (144 bytes per 256 weights); Q6_K (210 per 256) for the output
  tensor (for the token embeddings instead when they are tied), for attn_v and ffn_down in the
  layers where `use_more_bits(i, n)` holds (the first and last eighth, and every third layer
  between: about half); in 80-layer models the other attn_v get Q5_K (176 per 256). A row length
  not a multiple of 256 falls back to Q5_0 / Q5_1 / Q8_0 (22 / 24 / 34 bytes per 32), the output
  to Q8_0. 1-D tensors (norms, biases) stay F32. GGUF's metadata and vocabulary are not weights.
- gguf-q4_k_s: the same rule's Q4_K_S mix: Q5_K for attn_v in the first four layers and for
  ffn_down in the first eighth, Q6_K for the output, Q4_K elsewhere (the 80-layer attn_v rule too).

`--measure` builds the model with random weights, quantises it with the real libraries and records
the bytes of the tensors they produced, the on-disk size and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHAPES_DIR = Path(__file__).resolve().parent / "shapes"
W4A16_GROUP_SIZE = 128
NF4_BLOCK = 64
NF4_NESTED_BLOCK = 256
GIB = 1024**3

# ggml block layouts: (weights per block, bytes per block), from ggml-common.h.
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
}
# llama.cpp's fallback when a row length does not divide the super-block (tensor_type_fallback).
GGML_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}

# Where each scheme's checkpoint can be loaded; "in memory only" schemes cannot be saved.
LOADS_WITH = {
    "bf16": "everything",
    "nf4": "transformers, TGI (--quantize bitsandbytes-nf4), transformers serve (--quantization bnb-4bit)",
    "nf4+int8-embed-head": "in memory only (bitsandbytes cannot save Embedding8bit)",
    "nf4+nf4-embed-head": "in memory only (bitsandbytes cannot save Embedding4bit)",
    "w4a16": "vLLM, TGI, SGLang (compressed-tensors, Marlin kernels), transformers",
    "gguf-q4_k_m": "llama.cpp, Ollama, LM Studio",
    "gguf-q4_k_s": "llama.cpp, Ollama, LM Studio",
}


class ShapeError(ValueError):
    """A shape name, config file or model folder cannot be used."""


@dataclass(frozen=True)
class Shape:
    name: str
    source: str
    config: Any  # a transformers PretrainedConfig


@dataclass(frozen=True)
class WeightTensor:
    """One stored parameter: `role` is embedding, head, linear (any other nn.Linear) or other."""

    name: str
    role: str
    shape: tuple[int, ...]
    layer: int | None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


# ---------------------------------------------------------------- shapes


def shipped_shapes() -> list[str]:
    return sorted(path.stem for path in SHAPES_DIR.glob("*.json"))


def _config_from_json(path: Path) -> tuple[str, Any]:
    from transformers import AutoConfig

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ShapeError(f"{path}: cannot read the config ({error})") from error
    except json.JSONDecodeError as error:
        raise ShapeError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from error
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise ShapeError(f"{path}: expected a model config object with a model_type, such as \"qwen2\"")
    name = data.pop("medlite_shape", {}).get("name") or path.stem
    model_type = data.pop("model_type")
    try:
        return name, AutoConfig.for_model(model_type, **data)
    except (ValueError, TypeError) as error:
        raise ShapeError(f"{path}: model_type {model_type!r} is not an architecture transformers knows") from error


def load_shape(name_or_path: str) -> Shape:
    """A shipped shape by name, a config JSON file, or a model folder holding config.json."""
    shipped = SHAPES_DIR / f"{name_or_path}.json"
    path = shipped if shipped.is_file() else Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ShapeError(f"{path}: not a model folder (config.json is missing)")
        _, config = _config_from_json(path / "config.json")
        return Shape(name=path.name, source=str(path), config=config)
    if path.is_file():
        name, config = _config_from_json(path)
        return Shape(name=name, source=str(path), config=config)
    raise ShapeError(
        f"--config {name_or_path!r}: no such shape, file or folder; shipped shapes: {', '.join(shipped_shapes())}"
    )


def _meta_model(config: Any) -> Any:
    """The model with every tensor on the meta device: shapes without memory."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except ValueError as error:
        raise ShapeError(f"unsupported architecture {config.model_type!r}: not a causal language model") from error


def weight_tensors(config: Any) -> tuple[list[WeightTensor], bool]:
    """Every stored parameter of the model with its role, and whether the head is tied to the embeddings."""
    from torch import nn

    model = _meta_model(config)
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding.weight
    roles: dict[str, str] = {}
    for module_name, module in model.named_modules():
        if module is embedding:
            roles[f"{module_name}.weight"] = "embedding"
        elif module is head:
            roles[f"{module_name}.weight"] = "head"
        elif isinstance(module, nn.Linear):
            roles[f"{module_name}.weight"] = "linear"
    tensors = []
    # named_parameters() yields a tied weight once, under the embedding's name.
    for name, parameter in model.named_parameters():
        match = re.search(r"\.layers\.(\d+)\.", name)
        tensors.append(
            WeightTensor(
                name=name,
                role=roles.get(name, "other"),
                shape=tuple(parameter.shape),
                layer=int(match.group(1)) if match else None,
            )
        )
    return tensors, tied


# ---------------------------------------------------------------- layouts


def bf16_bytes(tensor: WeightTensor) -> int:
    return 2 * tensor.numel


def nf4_double_quant_bytes(tensor: WeightTensor) -> int:
    """bitsandbytes Linear4bit, NF4, blocksize 64, compress_statistics=True, as saved per layer."""
    blocks = math.ceil(tensor.numel / NF4_BLOCK)
    nested_blocks = math.ceil(blocks / NF4_NESTED_BLOCK)
    codes = math.ceil(tensor.numel / 2)
    return codes + blocks + 4 * nested_blocks + 4 * 16 + 4 * 256


def nf4_bytes(tensor: WeightTensor) -> int:
    """bitsandbytes Embedding4bit, NF4: fp32 absmax per 64 weights, no double quantisation."""
    return math.ceil(tensor.numel / 2) + 4 * math.ceil(tensor.numel / NF4_BLOCK) + 4 * 16


def int8_rowwise_bytes(tensor: WeightTensor) -> int:
    """bitsandbytes LLM.int8 (Embedding8bit, Linear8bitLt): int8 weights, one fp32 scale per row."""
    rows = tensor.shape[0]
    return tensor.numel + 4 * rows


def w4a16_bytes(tensor: WeightTensor) -> int:
    """compressed-tensors pack-quantized, symmetric, group 128: weight_packed, weight_scale, weight_shape."""
    rows, columns = tensor.shape
    packed = 4 * rows * math.ceil(columns / 8)
    scales = 2 * rows * math.ceil(columns / W4A16_GROUP_SIZE)
    return packed + scales + 2 * 8


def _use_more_bits(layer: int, layers: int) -> bool:
    # llama.cpp's use_more_bits(i_layer, n_layers); C's integer division matches // for these positives.
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def gguf_type(tensor: WeightTensor, tied: bool, layers: int, mix: str) -> str:
    """The ggml type llama-quantize's Q4_K_M or Q4_K_S mix gives this tensor."""
    if len(tensor.shape) < 2 or tensor.name.endswith("norm.weight"):
        return "F32"
    columns = tensor.shape[-1]
    if tensor.role == "head" or (tied and tensor.role == "embedding"):
        return "Q8_0" if columns % 256 else "Q6_K"
    wanted = "Q4_K"
    if tensor.name.endswith("v_proj.weight") and tensor.layer is not None:
        if mix == "Q4_K_M" and _use_more_bits(tensor.layer, layers):
            wanted = "Q6_K"
        elif mix == "Q4_K_S" and tensor.layer < 4:
            wanted = "Q5_K"
        if wanted == "Q4_K" and layers == 80:  # llama.cpp's LLM_TYPE_70B: attn_v is 8x smaller than attn_q
            wanted = "Q5_K"
    elif tensor.name.endswith("down_proj.weight") and tensor.layer is not None:
        if mix == "Q4_K_M" and _use_more_bits(tensor.layer, layers):
            wanted = "Q6_K"
        elif mix == "Q4_K_S" and tensor.layer < layers // 8:
            wanted = "Q5_K"
    if columns % GGML_BLOCKS[wanted][0]:
        wanted = GGML_FALLBACK[wanted]
        if columns % GGML_BLOCKS[wanted][0]:
            return "F16"
    return wanted


def ggml_bytes(tensor: WeightTensor, ggml_type: str) -> int:
    block, size = GGML_BLOCKS[ggml_type]
    return tensor.numel // block * size


def _w4a16_problem(tensors: list[WeightTensor]) -> str | None:
    for tensor in tensors:
        if tensor.role == "linear" and tensor.shape[1] % W4A16_GROUP_SIZE:
            return (
                f"{tensor.name} has {tensor.shape[1]} inputs, not a multiple of the group size {W4A16_GROUP_SIZE}"
            )
    return None


def _scheme_bytes(tensors: list[WeightTensor], layout: Callable[[WeightTensor], int]) -> int:
    return sum(layout(tensor) for tensor in tensors)


def compute_weight_bytes(tensors: list[WeightTensor], tied: bool, layers: int) -> dict[str, int | None]:
    """Weight bytes per scheme; None where the scheme cannot hold this shape."""

    def nf4(tensor: WeightTensor) -> int:
        return nf4_double_quant_bytes(tensor) if tensor.role == "linear" else bf16_bytes(tensor)

    def nf4_int8_embed_head(tensor: WeightTensor) -> int:
        return int8_rowwise_bytes(tensor) if tensor.role in ("embedding", "head") else nf4(tensor)

    def nf4_nf4_embed_head(tensor: WeightTensor) -> int:
        if tensor.role == "embedding":
            return nf4_bytes(tensor)
        return nf4_double_quant_bytes(tensor) if tensor.role == "head" else nf4(tensor)

    def w4a16(tensor: WeightTensor) -> int:
        return w4a16_bytes(tensor) if tensor.role == "linear" else bf16_bytes(tensor)

    def q4_k_m(tensor: WeightTensor) -> int:
        return ggml_bytes(tensor, gguf_type(tensor, tied, layers, "Q4_K_M"))

    def q4_k_s(tensor: WeightTensor) -> int:
        return ggml_bytes(tensor, gguf_type(tensor, tied, layers, "Q4_K_S"))

    return {
        "bf16": _scheme_bytes(tensors, bf16_bytes),
        "nf4": _scheme_bytes(tensors, nf4),
        "nf4+int8-embed-head": _scheme_bytes(tensors, nf4_int8_embed_head),
        "nf4+nf4-embed-head": _scheme_bytes(tensors, nf4_nf4_embed_head),
        "w4a16": None if _w4a16_problem(tensors) else _scheme_bytes(tensors, w4a16),
        "gguf-q4_k_m": _scheme_bytes(tensors, q4_k_m),
        "gguf-q4_k_s": _scheme_bytes(tensors, q4_k_s),
    }


def memory_report(shape: Shape) -> dict[str, Any]:
    """The computed figures for one shape, in the JSON form the command writes and stores."""
    tensors, tied = weight_tensors(shape.config)
    layers = int(shape.config.num_hidden_layers)
    computed = compute_weight_bytes(tensors, tied, layers)
    bf16 = computed["bf16"]
    schemes: dict[str, dict[str, Any]] = {}
    for name, weight_bytes in computed.items():
        entry: dict[str, Any] = {
            "weight_bytes": weight_bytes,
            "fraction_of_bf16": None if weight_bytes is None else round(weight_bytes / bf16, 6),
            "reduction_vs_bf16": None if weight_bytes is None else round(1 - weight_bytes / bf16, 6),
            "loads_with": LOADS_WITH[name],
        }
        if weight_bytes is None:
            entry["not_applicable"] = _w4a16_problem(tensors)
        schemes[name] = entry
    return {
        "shape": shape.name,
        "source": shape.source,
        "model_type": shape.config.model_type,
        "parameters": sum(tensor.numel for tensor in tensors),
        "tied_embeddings": tied,
        "layers": layers,
        "schemes": schemes,
    }


# ---------------------------------------------------------------- measuring


def _peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux; children covers the llm-compressor subprocess.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * 1024


def _folder_file_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.safetensors"))


def _state_dict_bytes(model: Any) -> int:
    """Bytes of every distinct tensor in the state dict, without bitsandbytes' JSON metadata blobs."""
    seen: set[int] = set()
    total = 0
    for name, tensor in model.state_dict().items():
        if ".quant_state." in name or tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.nbytes
    return total


def _safetensors_tensor_bytes(folder: Path) -> int:
    """Bytes of the tensors stored in a folder's safetensors files, read from their headers."""
    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                tensor_slice = handle.get_slice(key)
                numel = math.prod(tensor_slice.get_shape())
                total += numel * _DTYPE_BYTES[tensor_slice.get_dtype()]
    return total


_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def check_fits(shape_bf16_bytes: int, workdir: Path) -> None:
    """Refuse before building anything when the random model and its copies cannot fit here."""
    import psutil

    # The bf16 model, its reload during quantisation and the quantised copy live together at peak.
    needed_memory = 3 * shape_bf16_bytes + GIB
    available = psutil.virtual_memory().available
    if needed_memory > available:
        raise ShapeError(
            f"--measure needs about {needed_memory / GIB:.1f} GiB of free memory for this shape, "
            f"{available / GIB:.1f} GiB is available; measure a smaller shape "
            f"(such as deepseek-r1-distill-qwen-1.5b) and compare it with its computed figure"
        )
    needed_disk = 2 * shape_bf16_bytes
    free = shutil.disk_usage(workdir).free
    if needed_disk > free:
        raise ShapeError(
            f"--measure needs about {needed_disk / GIB:.1f} GiB of disk in {workdir}, {free / GIB:.1f} GiB is free"
        )


def _quantized_embed_head_bytes(model: Any, tied: bool, scheme: str) -> tuple[int, int]:
    """(bf16 bytes, quantised bytes) of the embedding and head, quantised by bitsandbytes' own functions."""
    import bitsandbytes.functional as bnb_functional

    weights = [(model.get_input_embeddings().weight.data, "embedding")]
    if not tied:
        weights.append((model.get_output_embeddings().weight.data, "head"))
    original = quantized = 0
    for weight, role in weights:
        original += weight.nbytes
        if scheme == "nf4+int8-embed-head":
            codes, scales, _ = bnb_functional.int8_vectorwise_quant(weight.to("cpu").half())
            quantized += codes.nbytes + scales.nbytes
        else:
            double = role == "head"
            codes, state = bnb_functional.quantize_4bit(
                weight, blocksize=NF4_BLOCK, compress_statistics=double, quant_type="nf4"
            )
            quantized += codes.nbytes + state.absmax.nbytes + state.code.nbytes
            if double:
                quantized += state.state2.absmax.nbytes + state.state2.code.nbytes
    return original, quantized


def measure(shape: Shape, report: dict[str, Any], workdir: Path, quantize_python: Path | None) -> dict[str, Any]:
    """Build the shape with random weights, quantise it for real, and record what the tensors take."""
    import torch
    from transformers import AutoModelForCausalLM

    from backend.compress.quantize import load_nf4

    computed = {name: entry["weight_bytes"] for name, entry in report["schemes"].items()}
    check_fits(computed["bf16"], workdir)
    results: dict[str, dict[str, Any]] = {}

    def record(name: str, measured_bytes: int | None, on_disk: int | None, note: str | None = None) -> None:
        entry: dict[str, Any] = {"measured_bytes": measured_bytes, "on_disk_bytes": on_disk}
        if measured_bytes is not None and computed[name]:
            entry["measured_vs_computed"] = round(measured_bytes / computed[name], 6)
        if note:
            entry["note"] = note
        entry["peak_rss_bytes_so_far"] = _peak_rss_bytes()
        results[name] = entry

    bf16_dir = workdir / "bf16"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(shape.config, dtype=torch.bfloat16)
    model.save_pretrained(bf16_dir)
    record("bf16", _state_dict_bytes(model), _folder_file_bytes(bf16_dir))
    del model

    nf4_dir = workdir / "nf4"
    model = load_nf4(bf16_dir)
    nf4_measured = _state_dict_bytes(model)
    model.save_pretrained(nf4_dir)
    record("nf4", nf4_measured, _folder_file_bytes(nf4_dir))
    tied = report["tied_embeddings"]
    for scheme in ("nf4+int8-embed-head", "nf4+nf4-embed-head"):
        original, quantized = _quantized_embed_head_bytes(model, tied, scheme)
        record(scheme, nf4_measured - original + quantized, None, "in memory: nf4 model with its embeddings and head quantised")
    del model

    if computed["w4a16"] is None:
        record("w4a16", None, None, report["schemes"]["w4a16"]["not_applicable"])
    elif quantize_python is None:
        record("w4a16", None, None, "not measured: the llm-compressor environment (.venv-quantize) is missing")
    else:
        w4a16_dir = workdir / "w4a16"
        _run_w4a16_data_free(quantize_python, bf16_dir, w4a16_dir)
        record("w4a16", _safetensors_tensor_bytes(w4a16_dir), _folder_file_bytes(w4a16_dir), "tensor bytes as saved")
    for scheme in ("gguf-q4_k_m", "gguf-q4_k_s"):
        record(scheme, None, None, "not measured: gguf-py 0.19 (PyPI) writes no K-quants; llama.cpp's llama-quantize does")
    return {"schemes": results, "peak_rss_bytes": _peak_rss_bytes()}


def _run_w4a16_data_free(python: Path, model_dir: Path, out_dir: Path) -> None:
    """Round-to-nearest W4A16 in the llm-compressor environment: GPTQ's exact layout, no calibration."""
    from backend.compress.quantize import W4A16_WORKER

    command = [str(python), str(W4A16_WORKER), "--model", str(model_dir), "--out", str(out_dir), "--data-free"]
    completed = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    if completed.returncode:
        raise RuntimeError(f"llm-compressor failed (exit {completed.returncode}); its messages are above")


# ---------------------------------------------------------------- printing and the command


def _gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / GIB:.3f}"


def format_table(report: dict[str, Any]) -> str:
    tied = "tied to the embeddings" if report["tied_embeddings"] else "untied"
    lines = [
        f"{report['shape']}: {report['model_type']}, {report['parameters']:,} parameters, "
        f"{report['layers']} layers, head {tied}",
        f"{'scheme':<21} {'weight bytes':>16} {'GiB':>8} {'of bf16':>8} {'reduction':>10}  loads with",
    ]
    for name, entry in report["schemes"].items():
        weight_bytes = entry["weight_bytes"]
        if weight_bytes is None:
            lines.append(f"{name:<21} {'n/a':>16} {'n/a':>8} {'n/a':>8} {'n/a':>10}  {entry['not_applicable']}")
            continue
        lines.append(
            f"{name:<21} {weight_bytes:>16,} {_gib(weight_bytes):>8} {entry['fraction_of_bf16']:>8.3f} "
            f"{entry['reduction_vs_bf16']:>9.1%}  {entry['loads_with']}"
        )
    measured = report.get("measured")
    if measured:
        lines += ["", f"measured ({report['device']}); peak RSS {measured['peak_rss_bytes'] / GIB:.2f} GiB"]
        lines.append(f"{'scheme':<21} {'computed':>16} {'measured':>16} {'meas/comp':>10} {'on disk':>16}  note")
        for name, entry in measured["schemes"].items():
            computed = report["schemes"][name]["weight_bytes"]
            measured_bytes = entry["measured_bytes"]
            ratio = entry.get("measured_vs_computed")
            on_disk = entry["on_disk_bytes"]
            lines.append(
                f"{name:<21} {'n/a' if computed is None else f'{computed:,}':>16} "
                f"{'n/a' if measured_bytes is None else f'{measured_bytes:,}':>16} "
                f"{'n/a' if ratio is None else f'{ratio:.4f}':>10} "
                f"{'n/a' if on_disk is None else f'{on_disk:,}':>16}  {entry.get('note', '')}"
            )
    return "\n".join(lines)


def describe_device() -> str:
    import psutil
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} GPU"
    memory = psutil.virtual_memory().total / GIB
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {memory:.0f} GiB RAM"


def run_memory_command(args: argparse.Namespace) -> int:
    from backend.bench.results import save_report
    from backend.compress.quantize import quantize_python
    from backend.settings import Settings
    from storage.db import Database

    shape = load_shape(args.config)
    report = memory_report(shape)
    report["device"] = describe_device() if args.measure else "computed"
    # Opened before measuring, so an unreachable database fails in seconds, not after the run.
    database = Database.open(Settings.from_env().resolved_database_url)
    try:
        if args.measure:
            if args.work_dir is not None:
                args.work_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="medlite-bench-memory-", dir=args.work_dir) as workdir:
                report["measured"] = measure(shape, report, Path(workdir), quantize_python())
        print(format_table(report))
        save_report(database, report, kind="memory", subject=shape.name, out=args.out)
    finally:
        database.close()
    return 0


def add_memory_command(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "memory",
        help="weight bytes of a model per 4-bit scheme, computed from its shapes (and measured with --measure)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        required=True,
        help=f"a shipped shape ({', '.join(shipped_shapes())}), a config JSON file, or a model folder",
    )
    parser.add_argument(
        "--measure",
        action="store_true",
        help="also build the model with random weights, quantise it, and record tensor bytes and peak RSS",
    )
    parser.add_argument("--out", type=Path, help="write the report to this JSON file")
    parser.add_argument("--work-dir", type=Path, help="where --measure writes its temporary checkpoints")
    parser.set_defaults(run=run_memory_command)
