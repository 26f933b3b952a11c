"""LoRA supervised fine-tuning with TRL's SFTTrainer: the teacher on the data, or the student on the teacher's answers.

Prompts are rendered with the trained model's own chat template (so a Llama teacher and a Qwen
student each see their own format) and the loss covers only the answer. Checkpoints land in
`<stage folder>/checkpoints`; a rerun resumes from the newest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig, SFTTrainer

from backend.distill.config import LoraSettings, TrainingSettings
from backend.distill.data import Example, chat_prompt
from backend.distill.lora import lora_config
from backend.distill.progress import ProgressFileCallback, StopOnSignal, Stopped, log

ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"


def prompt_completion_rows(tokenizer, examples: Sequence[Example]) -> list[dict[str, str]]:
    """TRL's prompt/completion format, as plain text: the chat template is applied here, not by TRL,
    because R1-style templates drop an assistant turn's reasoning, which is exactly what is learnt."""
    return [{"prompt": chat_prompt(tokenizer, e.prompt), "completion": e.answer} for e in examples]


def model_init_kwargs(settings: TrainingSettings) -> dict[str, Any]:
    """QLoRA's 4-bit base where CUDA is there; a plain load otherwise (4-bit kernels need CUDA)."""
    if settings.quantize_4bit and torch.cuda.is_available():
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
        return {"quantization_config": quant, "dtype": torch.bfloat16}
    if settings.quantize_4bit:
        log.warning("quantize_4bit asked for, but CUDA is not available: training the base in full precision")
    return {"dtype": torch.bfloat16 if settings.bf16 else torch.float32}


def trainer_arguments(settings: TrainingSettings, stage_dir: Path, seed: int, has_eval: bool) -> dict[str, Any]:
    """The TrainingArguments shared by every stage's trainer."""
    return {
        "output_dir": str(stage_dir / CHECKPOINTS_DIR),
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps,
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "learning_rate": settings.learning_rate,
        "lr_scheduler_type": "linear",
        "warmup_steps": settings.warmup_ratio,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "logging_steps": settings.logging_steps,
        "eval_strategy": "steps" if has_eval and settings.eval_steps else "no",
        "eval_steps": settings.eval_steps,
        "bf16": settings.bf16,
        # Matches the pipeline's PartialState: without CUDA, launched processes train together over gloo.
        # (Apple's MPS is left out on purpose: peft and TRL runs there are not tested.)
        "use_cpu": not torch.cuda.is_available(),
        "gradient_checkpointing": settings.gradient_checkpointing,
        "seed": seed,
        "report_to": "none",
        "max_length": settings.max_length,
    }


def train_to_adapter(trainer, stage_dir: Path, stop: StopOnSignal) -> Path:
    """Train (resuming from the newest checkpoint), save the adapter; raise Stopped after a signal."""
    checkpoints = stage_dir / CHECKPOINTS_DIR
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume:
        log.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    if stop.received is not None:
        raise Stopped(f"stopped by signal {stop.received} at step {trainer.state.global_step}; run again to resume")
    adapter = stage_dir / ADAPTER_DIR
    trainer.save_model(str(adapter))  # the adapter and the tokenizer, written by the main process only
    return adapter


def sft_train(
    *,
    model: str,
    examples: Sequence[Example],
    eval_examples: Sequence[Example],
    lora: LoraSettings,
    training: TrainingSettings,
    stage_dir: Path,
    stage: str,
    seed: int,
    extra_callbacks: Sequence[TrainerCallback] = (),
) -> Path:
    """LoRA-fine-tune `model` on `examples`; returns the saved adapter's folder."""
    tokenizer = AutoTokenizer.from_pretrained(model)
    train = Dataset.from_list(prompt_completion_rows(tokenizer, examples))
    evaluation = Dataset.from_list(prompt_completion_rows(tokenizer, eval_examples)) if eval_examples else None
    args = SFTConfig(
        **trainer_arguments(training, stage_dir, seed, evaluation is not None),
        completion_only_loss=True,
        model_init_kwargs=model_init_kwargs(training),
    )
    stop = StopOnSignal()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=lora_config(lora),
        callbacks=[ProgressFileCallback(stage_dir.parent, stage), stop, *extra_callbacks],
    )
    return train_to_adapter(trainer, stage_dir, stop)
