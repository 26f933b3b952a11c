"""Training data for distillation: prompt/answer pairs from real medical data sets.

Each multiple-choice item becomes the user message the app would send (the exam template, or a
compact form for tiny models) and an R1-shaped answer: the data set's explanation as reasoning,
`</think>`, then the answer line the evaluation harness reads. The split into transfer (training)
and validation items is a seeded hash of each item's id, so it never changes between runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from backend.distill.config import DataConfig, DataSource
from backend.evaluate.datasets import (
    DatasetError,
    EvalItem,
    _json_lines,
    item_to_exam_fields,
    load_medmcqa,
    load_pubmedqa,
)
from templates import get_template, render_prompt

EXAM_QUESTION_TYPE = "exam"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class Example:
    """One training pair. `item` is the multiple-choice item behind it (None for free prompt/answer pairs)."""

    id: str
    prompt: str  # the user message, before any chat template
    answer: str  # what the model writes after the generation prompt: reasoning, </think>, answer
    item: EvalItem | None = None


def render_user_message(item: EvalItem, style: str) -> str:
    """The user message for `item`: the app's exam template, or (compact) the question alone.

    Tiny models attend to a 16-token window, so a compact prompt ends with what tells items apart.
    """
    fields = item_to_exam_fields(item)
    if style == "template":
        return render_prompt(get_template(EXAM_QUESTION_TYPE, item.language), fields)
    return fields["stem"]


def answer_text(reasoning: str, letter: str) -> str:
    """R1's reply shape, with the exam template's answer line."""
    return f"{reasoning.strip()}\n{THINK_CLOSE}\n\nThe answer is {letter}."


def _medmcqa_explanations(path: Path) -> dict[str, str]:
    file = path if path.is_file() else path / "dev.json"
    return {
        record["id"]: record["exp"]
        for _, record in _json_lines(file)
        if isinstance(record.get("exp"), str) and isinstance(record.get("id"), str)
    }


def _pubmedqa_long_answers(path: Path) -> dict[str, str]:
    file = path if path.is_file() else path / "ori_pqal.json"
    records = json.loads(file.read_text(encoding="utf-8"))
    return {pmid: r["LONG_ANSWER"] for pmid, r in records.items() if isinstance(r.get("LONG_ANSWER"), str)}


def _jsonl_examples(source: DataSource) -> list[Example]:
    path = Path(source.path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (data.sources: a JSON-lines file of prompt/answer pairs)")
    examples = []
    for where, record in _json_lines(path):
        for key in ("prompt", "answer"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise DatasetError(f"{where}: expected {key!r} to be non-empty text, found {record.get(key)!r}")
        answer = record["answer"] if THINK_CLOSE in record["answer"] else f"{THINK_CLOSE}\n\n{record['answer']}"
        examples.append(Example(id=f"{path.stem}-{len(examples) + 1}", prompt=record["prompt"], answer=answer))
    return examples[: source.limit]


def load_source(source: DataSource, *, prompt_style: str, include_reasoning: bool) -> list[Example]:
    """The examples of one configured source, in file order."""
    if source.kind == "jsonl":
        return _jsonl_examples(source)
    path = Path(source.path)
    if source.kind == "medmcqa":
        items = load_medmcqa(path, limit=source.limit)
        reasons = _medmcqa_explanations(path) if include_reasoning else {}
    else:
        items = load_pubmedqa(path, limit=source.limit, split="all")
        reasons = _pubmedqa_long_answers(path) if include_reasoning else {}
    return [
        Example(
            id=f"{source.kind}-{item.id}",
            prompt=render_user_message(item, prompt_style),
            answer=answer_text(reasons.get(item.id, ""), item.gold),
            item=item,
        )
        for item in items
    ]


def _is_validation(example_id: str, fraction: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def build_splits(config: DataConfig) -> tuple[list[Example], list[Example]]:
    """(transfer, validation): all configured sources, split by a seeded hash of each id."""
    examples = [
        example
        for source in config.sources
        for example in load_source(source, prompt_style=config.prompt_style, include_reasoning=config.include_reasoning)
    ]
    transfer = [e for e in examples if not _is_validation(e.id, config.validation_fraction, config.seed)]
    validation = [e for e in examples if _is_validation(e.id, config.validation_fraction, config.seed)]
    if not transfer:
        raise DatasetError(
            "data.sources: no transfer items left after the split; add data or lower validation_fraction"
        )
    return transfer, validation


def chat_prompt(tokenizer, user_message: str) -> str:
    """The prompt exactly as the app's engines send it: the model's chat template with its generation prompt."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message}], add_generation_prompt=True, tokenize=False
    )
