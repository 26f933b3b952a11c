"""Training data from the real MedMCQA and PubMedQA files, rendered as the app renders questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.distill.config import DataConfig, DataSource
from backend.distill.data import build_splits, load_source
from backend.evaluate.datasets import DatasetError
from backend.evaluate.extract import extract_answer
from tests.fixtures.data import SHARED_DATA, needs_shared_data


@needs_shared_data
def test_medmcqa_items_become_template_prompts_with_explained_answers() -> None:
    examples = load_source(
        DataSource(kind="medmcqa", path=str(SHARED_DATA / "medmcqa"), limit=20),
        prompt_style="template",
        include_reasoning=True,
    )
    assert len(examples) == 20
    explained = next(e for e in examples if len(e.answer) > 100)  # an item whose `exp` is there
    assert "Answer this multiple-choice medical exam question" in explained.prompt
    assert explained.item is not None and f"The answer is {explained.item.gold}." in explained.answer
    # What the student learns is what the evaluation harness reads as the gold answer.
    assert all(extract_answer(e.answer, e.item) == e.item.gold for e in examples)


@needs_shared_data
def test_pubmedqa_long_answers_are_the_reasoning() -> None:
    [example] = load_source(
        DataSource(kind="pubmedqa", path=str(SHARED_DATA / "pubmedqa"), limit=1),
        prompt_style="compact",
        include_reasoning=True,
    )
    record = next(iter(json.loads((SHARED_DATA / "pubmedqa" / "ori_pqal.json").read_text()).values()))
    assert example.answer.startswith(record["LONG_ANSWER"].strip())
    assert example.prompt.endswith(record["QUESTION"])


@needs_shared_data
def test_the_split_is_deterministic_and_disjoint() -> None:
    config = DataConfig(sources=[DataSource(kind="medmcqa", path=str(SHARED_DATA / "medmcqa"), limit=200)])
    transfer, validation = build_splits(config)
    again_transfer, again_validation = build_splits(config)
    assert [e.id for e in transfer] == [e.id for e in again_transfer]
    assert {e.id for e in transfer}.isdisjoint(e.id for e in validation)
    assert len(transfer) + len(validation) == 200
    assert 0.1 < len(validation) / 200 < 0.3


def test_jsonl_pairs_are_read_and_bad_lines_named(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "Dose of X?", "answer": "10 mg"}\n{"prompt": "Why?"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"pairs\.jsonl, line 2: expected 'answer' to be non-empty text"):
        load_source(DataSource(kind="jsonl", path=str(pairs)), prompt_style="template", include_reasoning=True)
    pairs.write_text('{"prompt": "Dose of X?", "answer": "10 mg"}\n', encoding="utf-8")
    [example] = load_source(DataSource(kind="jsonl", path=str(pairs)), prompt_style="template", include_reasoning=True)
    assert example.prompt == "Dose of X?" and example.answer == "</think>\n\n10 mg" and example.item is None
