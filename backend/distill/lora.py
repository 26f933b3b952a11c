"""LoRA on chosen attention layers (peft), and merging an adapter into a standalone checkpoint with a model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from backend.distill.config import LoraSettings


def lora_config(settings: LoraSettings) -> LoraConfig:
    """peft's LoraConfig for a causal LM; `layers` limits the adapters to those decoder layers."""
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        layers_to_transform=settings.layer_list(),
        modules_to_save=list(settings.modules_to_save) or None,
        # A model with tied input and output embeddings keeps them tied when either is trained,
        # so the merged checkpoint (saved tied) behaves exactly as the model did in training.
        ensure_weight_tying=bool({"embed_tokens", "lm_head"} & set(settings.modules_to_save)),
    )


def _model_card(title: str, base_model: str, details: dict[str, Any]) -> str:
    body = json.dumps(details, indent=2, ensure_ascii=False, default=str)
    return (
        f"---\nbase_model: {base_model}\nlibrary_name: transformers\ntags:\n- medlite\n- distillation\n- lora\n---\n\n"
        f"# {title}\n\n"
        f"LoRA adapter merged into `{base_model}` by MedLite's distillation pipeline "
        "(`python -m backend distill`). Config, data and metrics of the run:\n\n"
        f"```json\n{body}\n```\n"
    )


def merge_adapter(base_model: str, adapter_dir: Path, out_dir: Path, *, title: str, details: dict[str, Any]) -> Path:
    """Fold the adapter into the base weights (merge_and_unload) and save a model that loads without peft."""
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype="auto")
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_model_card(out_dir, title=title, base_model=base_model, details=details)
    return out_dir


def write_model_card(out_dir: Path, *, title: str, base_model: str, details: dict[str, Any]) -> None:
    (out_dir / "README.md").write_text(_model_card(title, base_model, details), encoding="utf-8")
