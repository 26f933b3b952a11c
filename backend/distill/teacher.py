"""Stage 2: LoRA supervised fine-tuning of the teacher on the training data, merged into a standalone model.

QLoRA (a 4-bit base) is used when the config asks for it and CUDA is there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from accelerate import PartialState

from backend.distill.config import DistillConfig
from backend.distill.data import Example
from backend.distill.lora import merge_adapter
from backend.distill.progress import log
from backend.distill.sft import sft_train

TEACHER_STAGE = "teacher"
MERGED_DIR = "merged"


def finetuned_teacher_path(config: DistillConfig) -> Path:
    return config.output_path / TEACHER_STAGE / MERGED_DIR


def finetune_teacher(
    config: DistillConfig, transfer: Sequence[Example], validation: Sequence[Example], state: PartialState
) -> Path:
    """The merged fine-tuned teacher's folder; reused as it is when an earlier run already made it.

    Every process trains; the main one merges while the others wait, so none reads a half-written model."""
    merged = finetuned_teacher_path(config)
    if (merged / "config.json").is_file():
        log.info("teacher already fine-tuned: %s", merged)
        return merged
    stage_dir = config.output_path / TEACHER_STAGE
    adapter = sft_train(
        model=config.teacher.model,
        examples=transfer,
        eval_examples=validation,
        lora=config.teacher.lora,
        training=config.teacher.training,
        stage_dir=stage_dir,
        stage=TEACHER_STAGE,
        seed=config.seed,
    )
    if state.is_main_process:
        details = {"stage": "teacher fine-tuning", "config": config.as_dict(), "training_items": len(transfer)}
        merge_adapter(config.teacher.model, adapter, merged, title=f"{config.name}: fine-tuned teacher", details=details)
    state.wait_for_everyone()
    return merged
