"""Logit-level distillation: TRL's GKDTrainer trains the student's LoRA adapter on the teacher's logits."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from backend.distill.config import config_from_dict
from backend.distill.data import Example
from backend.distill.logit import PromptCompletionCollator, logit_distill
from backend.distill.sft import prompt_completion_rows
from backend.evaluate.datasets import EvalItem

ITEMS = [
    EvalItem(id=str(n), question=f"Question {n}: which drug?", options={"A": "x", "B": "y"}, gold="AB"[n % 2])
    for n in range(8)
]
EXAMPLES = [Example(id=i.id, prompt=i.question, answer=f"\n</think>\n\nThe answer is {i.gold}.", item=i) for i in ITEMS]


def test_the_collator_masks_the_prompt_and_left_pads_prompts(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = prompt_completion_rows(tokenizer, EXAMPLES[:2])
    batch = PromptCompletionCollator(tokenizer, max_length=256)(rows)
    prompt_len = int(batch["prompt_attention_mask"][0].sum())
    assert (batch["labels"][0, :prompt_len] == -100).all()
    answer = tokenizer.decode(batch["labels"][0][batch["labels"][0] != -100])
    assert answer == "\n</think>\n\nThe answer is A." + tokenizer.eos_token
    assert batch["prompt_attention_mask"][0, -1] == 1  # left-padded for generation


def test_gkd_trains_a_lora_adapter_that_changes_the_student(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = config_from_dict(
        {
            "name": "logit",
            "output_dir": str(tmp_path / "run"),
            "method": "logit",
            "data": {"sources": [{"kind": "jsonl", "path": "unused.jsonl"}]},
            "teacher": {"model": str(tiny_model_dir), "finetune": False},
            "student": {
                "model": str(tiny_model_dir),
                "lora": {"rank": 4, "alpha": 8, "layers": [1]},
                "training": {
                    "max_steps": 2,
                    "batch_size": 4,
                    "learning_rate": 0.01,
                    "save_steps": 1,
                    "logging_steps": 1,
                },
            },
            "logit": {"beta": 0.5, "temperature": 1.0, "lmbda": 0.0},
        }
    )
    # A different teacher, so the divergence is not zero and the adapter must move.
    teacher = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for parameter in teacher.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    teacher.save_pretrained(tmp_path / "teacher")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "teacher")
    adapter = logit_distill(config, tmp_path / "teacher", EXAMPLES, [])
    student = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    lora_b = [p for n, p in student.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)
    assert all(".layers.1." in n for n, _ in student.named_parameters() if "lora_" in n)  # only layer 1 adapted
    assert (tmp_path / "run" / "student" / "checkpoints" / "checkpoint-2").is_dir()
