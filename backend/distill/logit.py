"""Stage 4: logit-level distillation with TRL's GKDTrainer (generalized JSD), the student with LoRA.

`beta` picks the divergence (0 forward KL, 1 reverse KL, between a JSD), `temperature` softens both
distributions, `lmbda` is the share of steps trained on the student's own samples (on-policy).
Comparing full next-token distributions needs one vocabulary, so differing tokenizers stop the run
before any model loads, pointing to sequence-level distillation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.experimental.gkd import GKDConfig, GKDTrainer

from backend.distill.config import DistillConfig
from backend.distill.data import Example
from backend.distill.lora import lora_config
from backend.distill.progress import ProgressFileCallback, StopOnSignal
from backend.distill.sft import model_init_kwargs, prompt_completion_rows, train_to_adapter, trainer_arguments

LOGIT_STAGE = "student"


class VocabularyMismatch(ValueError):
    """Teacher and student tokenizers differ, so their logits cannot be compared token by token."""


def check_same_vocabulary(teacher: str | Path, student: str | Path) -> None:
    teacher_vocab = AutoTokenizer.from_pretrained(teacher).get_vocab()
    student_vocab = AutoTokenizer.from_pretrained(student).get_vocab()
    if teacher_vocab != student_vocab:
        raise VocabularyMismatch(
            f"method: logit needs teacher and student to share one vocabulary, but the teacher {teacher} has "
            f"{len(teacher_vocab)} tokens and the student {student} has {len(student_vocab)}"
            f"{'' if len(teacher_vocab) != len(student_vocab) else ' with different ids'}. "
            "Use method: sequence (stage 3), which works across tokenizers."
        )


class PromptCompletionCollator:
    """Batches for GKDTrainer from plain prompt/completion text.

    TRL's ChatML collator re-renders `messages` through the chat template, and R1-style templates
    drop an assistant turn's reasoning; here the prompt is already rendered and the completion kept whole.
    Prompts are left-padded separately for the on-policy generation GKD does on `lmbda` of the steps.
    """

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, rows: list[dict[str, str]]) -> dict[str, Any]:
        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token or ""
        sequences, prompt_lengths = [], []
        for row in rows:
            prompt = self.tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
            completion = row["completion"] if row["completion"].endswith(eos) else row["completion"] + eos
            answer = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
            ids = (prompt + answer)[-self.max_length :]
            sequences.append(ids)
            prompt_lengths.append(max(len(ids) - len(answer), 1))
        width = max(len(ids) for ids in sequences)
        prompt_width = max(prompt_lengths)
        batch = {
            "input_ids": torch.full((len(rows), width), pad, dtype=torch.long),
            "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
            "labels": torch.full((len(rows), width), -100, dtype=torch.long),
            "prompts": torch.full((len(rows), prompt_width), pad, dtype=torch.long),
            "prompt_attention_mask": torch.zeros((len(rows), prompt_width), dtype=torch.long),
        }
        for row, (ids, prompt_len) in enumerate(zip(sequences, prompt_lengths)):
            batch["input_ids"][row, : len(ids)] = torch.tensor(ids)
            batch["attention_mask"][row, : len(ids)] = 1
            batch["labels"][row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
            batch["prompts"][row, prompt_width - prompt_len :] = torch.tensor(ids[:prompt_len])
            batch["prompt_attention_mask"][row, prompt_width - prompt_len :] = 1
        return batch


def logit_distill(
    config: DistillConfig, teacher_path: Path, examples: Sequence[Example], eval_examples: Sequence[Example]
) -> Path:
    """Train the student's LoRA adapter on the teacher's logits; returns the adapter's folder."""
    check_same_vocabulary(teacher_path, config.student.model)
    stage_dir = config.output_path / LOGIT_STAGE
    training = config.student.training
    tokenizer = AutoTokenizer.from_pretrained(config.student.model)
    train = Dataset.from_list(prompt_completion_rows(tokenizer, examples))
    evaluation = Dataset.from_list(prompt_completion_rows(tokenizer, eval_examples)) if eval_examples else None
    args = GKDConfig(
        **trainer_arguments(training, stage_dir, config.seed, evaluation is not None),
        beta=config.logit.beta,
        temperature=config.logit.temperature,
        lmbda=config.logit.lmbda,
        max_new_tokens=config.logit.max_new_tokens,
        model_init_kwargs=model_init_kwargs(training),
    )
    teacher = AutoModelForCausalLM.from_pretrained(teacher_path, dtype=model_init_kwargs(training)["dtype"])
    stop = StopOnSignal()
    trainer = GKDTrainer(
        model=config.student.model,
        teacher_model=teacher,
        args=args,
        data_collator=PromptCompletionCollator(tokenizer, training.max_length),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=lora_config(config.student.lora),
        callbacks=[ProgressFileCallback(config.output_path, LOGIT_STAGE), stop],
    )
    return train_to_adapter(trainer, stage_dir, stop)
