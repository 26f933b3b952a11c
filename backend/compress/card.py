"""The card (README.md) written beside every quantised checkpoint: what was done, on what, and the sizes.

A checkpoint folder travels on its own (to a GPU host, a model registry); the card keeps its
history with it, measured rather than estimated: weight bytes are read from the files on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf")

METHOD_TITLES = {
    "nf4": "bitsandbytes NF4, double quantisation, bf16 compute",
    "w4a16": "GPTQ W4A16 (llm-compressor, compressed-tensors pack-quantized, group size 128, symmetric)",
}


def weight_file_bytes(folder: Path) -> int:
    """Bytes of the weight files in `folder` (safetensors, PyTorch bin or GGUF)."""
    return sum(path.stat().st_size for pattern in WEIGHT_PATTERNS for path in Path(folder).glob(pattern))


@dataclass(frozen=True)
class Card:
    method: str
    source_model: str
    architecture: str
    source_bytes: int
    output_bytes: int
    calibration: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction_of_source(self) -> float:
        return self.output_bytes / self.source_bytes


def _serving_lines(card: Card, folder: Path) -> list[str]:
    if card.method == "nf4":
        return [
            "bitsandbytes quantises at load time, so GPU servers are pointed at the unquantised source:",
            "",
            "```",
            f"text-generation-launcher --model-id {card.source_model} --quantize bitsandbytes-nf4",
            f"transformers serve {card.source_model} --quantization bnb-4bit",
            "```",
            "",
            "This folder itself loads in transformers (its quantization_config is stored):",
            "",
            "```python",
            f'AutoModelForCausalLM.from_pretrained("{folder}")',
            "```",
        ]
    return [
        "vLLM, TGI and SGLang load this folder with their Marlin W4A16 kernels on a GPU:",
        "",
        "```",
        f"vllm serve {folder}",
        f"text-generation-launcher --model-id {folder} --quantize compressed-tensors",
        "```",
        "",
        "transformers loads it too (with compressed-tensors installed), decompressing on a CPU.",
    ]


def render_card(card: Card, folder: Path) -> str:
    lines = [
        f"# {Path(card.source_model).name}, {card.method}",
        "",
        "Written by `python -m backend quantize` (MedLite).",
        "",
        "| | |",
        "|---|---|",
        f"| method | {METHOD_TITLES.get(card.method, card.method)} |",
        f"| source model | `{card.source_model}` |",
        f"| architecture | {card.architecture} |",
        f"| source weight files | {card.source_bytes:,} bytes |",
        f"| quantised weight files (measured) | {card.output_bytes:,} bytes |",
        f"| size of source | {card.fraction_of_source:.3f} |",
    ]
    for key, value in card.settings.items():
        lines.append(f"| {key} | {value} |")
    lines += ["", "## Calibration data", ""]
    if card.calibration is None:
        lines.append("None: this method quantises each weight block on its own (no calibration).")
    else:
        lines.append(card.calibration["description"])
        lines.append("")
        for source, count in card.calibration["sources"].items():
            lines.append(f"- {source}: {count} prompts")
    lines += ["", "## Serving", ""]
    lines += _serving_lines(card, folder)
    return "\n".join(lines) + "\n"


def write_card(folder: Path, card: Card, final_folder: Path | None = None) -> Path:
    """Write README.md into `folder`, naming `final_folder` (where it will be moved) in the commands."""
    path = Path(folder) / "README.md"
    path.write_text(render_card(card, final_folder or folder), encoding="utf-8")
    return path
