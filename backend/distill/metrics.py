"""Stage 5: score teacher, student before and student after on the transfer and validation items.

Each model answers the very prompts it was trained on (greedy): the students in-process and in
batches, the teacher too unless it is served (TGI, vLLM), in which case it answers through its
server. The evaluation harness's `extract_answer` reads the letter, so "correct" means what it
means in `python -m backend evaluate`. Agreement is the share of items where the student's letter
equals the teacher's. The KL divergence teacher -> student is measured on the teacher's own answer tokens; it
needs the teacher's logits and a shared tokenizer (None otherwise, with the reason in `note`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from backend.distill.data import Example, chat_prompt
from backend.distill.generate import reply_text, write_answers
from backend.evaluate.extract import extract_answer
from backend.inference.engine import Engine
from backend.inference.types import GenerationParams


@dataclass(frozen=True)
class Answers:
    """A model's raw answers and the letters read from them (None: unreadable)."""

    texts: list[str]
    letters: list[str | None]


def load(model_path: str | Path) -> tuple[PreTrainedModel, Any]:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto")
    model.eval()
    return model, tokenizer


@torch.no_grad()
def generate_answers(
    model: PreTrainedModel, tokenizer, examples: Sequence[Example], *, max_new_tokens: int, batch_size: int, desc: str
) -> Answers:
    """Greedy answers to each example's prompt, in batches (left padding, as decoder-only generation needs)."""
    tokenizer.padding_side = "left"
    texts: list[str] = []
    for start in tqdm(range(0, len(examples), batch_size), desc=desc, unit="batch"):
        batch = examples[start : start + batch_size]
        prompts = [chat_prompt(tokenizer, e.prompt) for e in batch]
        inputs = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt").to(model.device)
        output = model.generate(
            **inputs, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
        )
        completions = output[:, inputs["input_ids"].shape[1] :]
        texts.extend(tokenizer.batch_decode(completions, skip_special_tokens=True))
    return Answers(texts, _letters(texts, examples))


def _letters(texts: Sequence[str], examples: Sequence[Example]) -> list[str | None]:
    return [extract_answer(text, e.item) if e.item is not None else None for text, e in zip(texts, examples)]


def served_answers(
    engine: Engine, examples: Sequence[Example], *, max_new_tokens: int, concurrency: int, desc: str
) -> Answers:
    """Greedy answers from a served model, through the same client the app uses."""
    params = GenerationParams(temperature=0.0, max_tokens=max_new_tokens)
    written = write_answers(engine, examples, params, concurrency=concurrency, desc=desc)
    by_id = {example.id: reply_text(reply) for example, reply in written}
    texts = [by_id[e.id] for e in examples]
    return Answers(texts, _letters(texts, examples))


def accuracy(answers: Answers, examples: Sequence[Example]) -> float | None:
    scored = [(letter, e.item.gold) for letter, e in zip(answers.letters, examples) if e.item is not None]
    return sum(letter == gold for letter, gold in scored) / len(scored) if scored else None


def agreement(student: Answers, teacher: Answers) -> float | None:
    """Share of items where both gave a readable answer and it is the same letter (unreadable counts as disagreeing)."""
    if not teacher.letters:
        return None
    same = sum(s is not None and s == t for s, t in zip(student.letters, teacher.letters))
    return same / len(teacher.letters)


def same_vocabulary(first, second) -> bool:
    return first.get_vocab() == second.get_vocab()


@torch.no_grad()
def kl_teacher_student(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    tokenizer,
    examples: Sequence[Example],
    teacher_texts: Sequence[str],
    *,
    batch_size: int,
) -> float:
    """Mean per-token KL(teacher || student) over the teacher's answer tokens, after each prompt."""
    tokenizer.padding_side = "right"
    total = 0.0
    tokens = 0
    for start in range(0, len(examples), batch_size):
        rows = []
        for example, text in zip(examples[start : start + batch_size], teacher_texts[start : start + batch_size]):
            prompt_ids = tokenizer(chat_prompt(tokenizer, example.prompt), add_special_tokens=False)["input_ids"]
            answer_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.append((prompt_ids + answer_ids, len(prompt_ids)))
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        scored = torch.zeros_like(input_ids, dtype=torch.bool)
        for row, (ids, prompt_len) in enumerate(rows):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            scored[row, prompt_len - 1 : len(ids) - 1] = True  # logits at i predict token i + 1
        teacher_logp = F.log_softmax(
            teacher(input_ids=input_ids.to(teacher.device), attention_mask=attention.to(teacher.device)).logits.float(),
            -1,
        )
        student_logp = F.log_softmax(
            student(input_ids=input_ids.to(student.device), attention_mask=attention.to(student.device)).logits.float(),
            -1,
        )
        kl = (teacher_logp.exp() * (teacher_logp - student_logp.to(teacher_logp.device))).sum(-1)
        mask = scored.to(kl.device)
        total += kl[mask].sum().item()
        tokens += int(mask.sum().item())
    return total / tokens if tokens else float("nan")


def _limit(examples: Sequence[Example], limit: int | None) -> list[Example]:
    return list(examples[:limit] if limit else examples)


def evaluate_run(
    *,
    teacher_path: str | Path | None,
    student_before_path: str | Path,
    student_after_path: str | Path,
    sets: dict[str, Sequence[Example]],
    max_new_tokens: int,
    batch_size: int,
    teacher_engine: Engine | None,
    concurrency: int,
) -> dict[str, Any]:
    """metrics.json's content: per set, teacher / student_before / student_after accuracy, agreement and KL.

    With `teacher_engine` the teacher is scored through its server and `teacher_path` is not used."""
    teacher: PreTrainedModel | None = None
    teacher_tokenizer = None
    if teacher_engine is not None:

        def teacher_says(examples: Sequence[Example], name: str) -> Answers:
            return served_answers(
                teacher_engine, examples, max_new_tokens=max_new_tokens, concurrency=concurrency, desc=f"teacher on {name}"
            )
    else:
        if teacher_path is None:
            raise ValueError("scoring needs the teacher: a model folder (teacher_path) or a served teacher_engine")
        teacher, teacher_tokenizer = load(teacher_path)

        def teacher_says(examples: Sequence[Example], name: str) -> Answers:
            return generate_answers(
                teacher, teacher_tokenizer, examples, max_new_tokens=max_new_tokens, batch_size=batch_size,
                desc=f"teacher on {name}",
            )

    teacher_answers = {name: teacher_says(examples, name) for name, examples in sets.items()}
    result: dict[str, Any] = {
        name: {"n": len(examples), "teacher": {"accuracy": accuracy(teacher_answers[name], examples)}}
        for name, examples in sets.items()
    }
    for role, path in (("student_before", student_before_path), ("student_after", student_after_path)):
        student, student_tokenizer = load(path)
        if teacher is None:
            no_kl = "the teacher is served: its logits are not available here, so no token-level KL"
        elif not same_vocabulary(teacher_tokenizer, student_tokenizer):
            no_kl = "teacher and student tokenizers differ: no token-level KL"
        else:
            no_kl = None
        for name, examples in sets.items():
            answers = generate_answers(
                student,
                student_tokenizer,
                examples,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                desc=f"{role} on {name}",
            )
            result[name][role] = {
                "accuracy": accuracy(answers, examples),
                "agreement": agreement(answers, teacher_answers[name]),
            }
            kl = result[name].setdefault("kl_teacher_student", {})
            kl[role.removeprefix("student_")] = (
                kl_teacher_student(
                    teacher, student, teacher_tokenizer, examples, teacher_answers[name].texts, batch_size=batch_size
                )
                if no_kl is None and examples
                else None
            )
            if no_kl is not None:
                kl["note"] = no_kl
        del student
    return result


def evaluation_sets(
    transfer: Sequence[Example], validation: Sequence[Example], transfer_limit: int | None, validation_limit: int | None
) -> dict[str, list[Example]]:
    return {"transfer": _limit(transfer, transfer_limit), "validation": _limit(validation, validation_limit)}
