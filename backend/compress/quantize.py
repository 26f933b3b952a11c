"""4-bit checkpoints from a model folder: bitsandbytes NF4, or GPTQ W4A16 through llm-compressor.

Everything that can be checked is checked before the model is loaded: the folder, its architecture,
the output folder, the disk space, and that the quantiser can run here. The output is written to a
`.partial` folder and renamed when complete, so a failed run never leaves a half checkpoint under
the name asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.compress.card import Card, weight_file_bytes, write_card

METHODS = ("nf4", "w4a16")
W4A16_GROUP_SIZE = 128
W4A16_WORKER = Path(__file__).resolve().parent / "w4a16_worker.py"
REPO_ROOT = Path(__file__).resolve().parents[2]
QUANTIZE_VENV = REPO_ROOT / ".venv-quantize"
QUANTIZE_PYTHON_ENV = "MEDLITE_QUANTIZE_PYTHON"
DEFAULT_CALIBRATION_DATA = REPO_ROOT.parent / "shared" / "data"
CREATE_VENV_HINT = (
    "python3 -m venv .venv-quantize && .venv-quantize/bin/pip install -r requirements-quantize.txt"
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
DISK_MARGIN_BYTES = 64 * 1024**2


class QuantizeError(ValueError):
    """The input cannot be quantised, or the quantiser cannot run here; the message says why."""


@dataclass(frozen=True)
class SourceModel:
    path: Path
    config: Any  # a transformers PretrainedConfig
    weight_bytes: int

    @property
    def architecture(self) -> str:
        return ", ".join(self.config.architectures or [self.config.model_type])


@dataclass(frozen=True)
class QuantizeResult:
    out: Path
    card: Card


# ---------------------------------------------------------------- checks before heavy work


def inspect_model_dir(path: Path) -> SourceModel:
    """The model folder's config and weight size, or a QuantizeError naming what is wrong."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    path = Path(path)
    if not path.exists():
        raise QuantizeError(f"--model {path}: no such folder")
    if not path.is_dir():
        raise QuantizeError(f"--model {path}: is a file; expected a model folder (config.json, weights, tokenizer)")
    if not (path / "config.json").is_file():
        raise QuantizeError(f"--model {path}: not a model folder (config.json is missing)")
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise QuantizeError(f"{path / 'config.json'}: not valid JSON ({error})") from error
    if not isinstance(raw, dict):
        raise QuantizeError(f"{path / 'config.json'}: expected a JSON object")
    if raw.get("quantization_config"):
        method = raw["quantization_config"].get("quant_method", "unknown")
        raise QuantizeError(f"--model {path}: already quantised ({method}); start from the unquantised checkpoint")
    try:
        config = AutoConfig.from_pretrained(path)
    except (ValueError, KeyError) as error:
        raise QuantizeError(
            f"--model {path}: unsupported architecture (model_type {raw.get('model_type')!r} is not one "
            f"transformers knows)"
        ) from error
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise QuantizeError(
            f"--model {path}: unsupported architecture {config.model_type!r}; quantize takes causal "
            f"language models such as qwen2 or llama"
        )
    weight_bytes = weight_file_bytes(path)
    if weight_bytes == 0:
        raise QuantizeError(f"--model {path}: no weight files (*.safetensors or *.bin) in the folder")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise QuantizeError(
            f"--model {path}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); a checkpoint without its "
            f"tokenizer cannot be served"
        )
    return SourceModel(path=path, config=config, weight_bytes=weight_bytes)


def check_out_dir(out: Path) -> None:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise QuantizeError(f"--out {out}: already exists and is not empty; choose a new folder (nothing is overwritten)")


def check_disk_space(folder: Path, needed_bytes: int) -> None:
    """Refuse when the file system holding `folder` (or its nearest existing parent) has too little room."""
    probe = Path(folder).resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed_bytes + DISK_MARGIN_BYTES > free:
        raise QuantizeError(
            f"--out {folder}: not enough disk space: the quantised model needs up to "
            f"{(needed_bytes + DISK_MARGIN_BYTES) / 1024**3:.2f} GiB, {free / 1024**3:.2f} GiB is free in {probe}"
        )


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_bitsandbytes() -> None:
    """Quantise one block on this machine's device, so a missing or unsupported backend fails here."""
    import torch

    device = _device()
    advice = (
        "On a GPU machine, serve the unquantised model with TGI (--quantize bitsandbytes-nf4) or "
        "`transformers serve MODEL --quantization bnb-4bit`"
    )
    try:
        import bitsandbytes
        import bitsandbytes.functional as bnb_functional
    except ImportError as error:
        raise QuantizeError(f"bitsandbytes is not installed (pip install -r requirements.txt). {advice}") from error
    try:
        block = torch.ones(64, dtype=torch.bfloat16, device=device)
        bnb_functional.quantize_4bit(block, compress_statistics=True, quant_type="nf4")
    except Exception as error:  # whatever the backend raises, it cannot quantise on this device
        raise QuantizeError(
            f"bitsandbytes {bitsandbytes.__version__} cannot quantise to NF4 on {device} here ({error}). {advice}"
        ) from error


def check_w4a16_shapes(config: Any) -> None:
    """Every linear layer but the head must take a multiple of 128 inputs (one scale per group of 128)."""
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module is not head and module.in_features % W4A16_GROUP_SIZE:
            raise QuantizeError(
                f"W4A16 cannot quantise {name}: it has {module.in_features} inputs, not a multiple of the "
                f"group size {W4A16_GROUP_SIZE}"
            )


def quantize_python() -> Path | None:
    """The Python of the llm-compressor environment: $MEDLITE_QUANTIZE_PYTHON, else .venv-quantize's."""
    configured = os.environ.get(QUANTIZE_PYTHON_ENV)
    candidate = Path(configured) if configured else QUANTIZE_VENV / "bin" / "python"
    return candidate if candidate.is_file() else None


def require_quantize_python() -> Path:
    python = quantize_python()
    if python is None:
        raise QuantizeError(
            "W4A16 needs llm-compressor, which pins transformers<=5.17 and huggingface_hub 1.x and so lives in "
            f"its own environment; none was found at {QUANTIZE_VENV} (or ${QUANTIZE_PYTHON_ENV}). "
            f"Create it from the repository root with: {CREATE_VENV_HINT}"
        )
    return python


# ---------------------------------------------------------------- calibration


def calibration_prompts(data_dir: Path, tokenizer: Any, samples: int) -> tuple[list[str], dict[str, Any]]:
    """Exam prompts rendered by the shipped templates, in the chat format the model serves.

    Only items the evaluation never scores are used, so calibration cannot leak into accuracy:
    PubMedQA's records outside its 500 test PMIDs (English) and CMMLU's 5-shot dev files (Chinese),
    three English prompts to one Chinese.
    """
    from backend.evaluate.datasets import DatasetError, item_to_exam_fields, load_cmmlu, load_pubmedqa
    from templates.loader import get_template
    from templates.render import render_prompt

    if samples < 1:
        raise QuantizeError(f"--calibration-samples must be at least 1, got {samples}")
    data_dir = Path(data_dir)
    chinese_wanted = samples // 4
    try:
        pubmedqa_test = {item.id for item in load_pubmedqa(data_dir / "pubmedqa", split="test")}
        english = [item for item in load_pubmedqa(data_dir / "pubmedqa", split="all") if item.id not in pubmedqa_test]
        chinese = load_cmmlu(data_dir / "cmmlu_medical" / "dev", limit=max(chinese_wanted, 1))[:chinese_wanted]
    except DatasetError as error:
        raise QuantizeError(f"--calibration-data {data_dir}: {error}") from error
    items = english[: samples - len(chinese)] + chinese
    texts = []
    for item in items:
        prompt = render_prompt(get_template("exam", item.language), item_to_exam_fields(item))
        texts.append(
            tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        )
    english_count = len(items) - len(chinese)
    description = {
        "description": (
            "Medical exam prompts rendered by MedLite's `exam` templates (en and zh) and the model's chat "
            f"template, from `{data_dir}`; only items outside every evaluated split."
        ),
        "sources": {
            "PubMedQA-L, records outside the 500 test PMIDs (en)": english_count,
            "CMMLU medical, 5-shot dev files (zh)": len(chinese),
        },
        "samples": len(texts),
    }
    return texts, description


# ---------------------------------------------------------------- methods


def load_nf4(model_dir: Path) -> Any:
    """The model loaded by transformers with bitsandbytes NF4, double quantisation and bf16 compute."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    return AutoModelForCausalLM.from_pretrained(
        model_dir, quantization_config=config, dtype=torch.bfloat16, device_map=_device()
    )


@contextmanager
def _writing(out: Path) -> Iterator[Path]:
    """A `.partial` folder beside `out`, removed if the block fails, so no half checkpoint is left."""
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _finish(partial: Path, out: Path, card: Card) -> QuantizeResult:
    write_card(partial, card, final_folder=out)
    if out.exists():  # an empty folder, allowed by check_out_dir
        out.rmdir()
    partial.rename(out)
    return QuantizeResult(out=out, card=card)


def quantize_nf4(model_dir: Path, out: Path) -> QuantizeResult:
    from transformers import AutoTokenizer

    source = inspect_model_dir(model_dir)
    out = Path(out)
    check_out_dir(out)
    check_disk_space(out, source.weight_bytes)
    check_bitsandbytes()
    with _writing(out) as partial:
        model = load_nf4(source.path)
        model.save_pretrained(partial)
        AutoTokenizer.from_pretrained(source.path).save_pretrained(partial)
        card = Card(
            method="nf4",
            source_model=str(source.path),
            architecture=source.architecture,
            source_bytes=source.weight_bytes,
            output_bytes=weight_file_bytes(partial),
            settings={"blocksize": 64, "double quantisation": "yes", "compute dtype": "bfloat16", "head": "not quantised"},
        )
        return _finish(partial, out, card)


def quantize_w4a16(
    model_dir: Path,
    out: Path,
    *,
    calibration_data: Path = DEFAULT_CALIBRATION_DATA,
    samples: int = 64,
    max_seq_length: int = 512,
) -> QuantizeResult:
    from transformers import AutoTokenizer

    source = inspect_model_dir(model_dir)
    out = Path(out)
    check_out_dir(out)
    check_disk_space(out, source.weight_bytes)
    check_w4a16_shapes(source.config)
    python = require_quantize_python()
    texts, calibration = calibration_prompts(calibration_data, AutoTokenizer.from_pretrained(source.path), samples)
    with _writing(out) as partial, tempfile.TemporaryDirectory(prefix="medlite-calibration-") as folder:
        calibration_file = Path(folder) / "prompts.jsonl"
        calibration_file.write_text("".join(json.dumps(text) + "\n" for text in texts), encoding="utf-8")
        command = [
            str(python),
            str(W4A16_WORKER),
            "--model",
            str(source.path),
            "--calibration",
            str(calibration_file),
            "--out",
            str(partial),
            "--max-seq-length",
            str(max_seq_length),
        ]
        completed = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
        if completed.returncode:
            raise RuntimeError(f"llm-compressor failed (exit {completed.returncode}); its messages are above")
        card = Card(
            method="w4a16",
            source_model=str(source.path),
            architecture=source.architecture,
            source_bytes=source.weight_bytes,
            output_bytes=weight_file_bytes(partial),
            calibration=calibration,
            settings={
                "algorithm": "GPTQ",
                "group size": W4A16_GROUP_SIZE,
                "head": "lm_head not quantised",
                "calibration max tokens": max_seq_length,
            },
        )
        return _finish(partial, out, card)


def quantize(model_dir: Path, out: Path, method: str, **options: Any) -> QuantizeResult:
    if method == "nf4":
        return quantize_nf4(model_dir, out)
    if method == "w4a16":
        return quantize_w4a16(model_dir, out, **options)
    raise QuantizeError(f"--method {method!r} is not supported; choose one of: {', '.join(METHODS)}")


def format_size(result: QuantizeResult) -> str:
    card = result.card
    return (
        f"{card.method} checkpoint written to {result.out}: {card.output_bytes:,} bytes of weights, "
        f"{card.fraction_of_source:.3f} of the source's {card.source_bytes:,} (card: {result.out / 'README.md'})"
    )

