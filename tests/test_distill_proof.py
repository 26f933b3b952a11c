"""The shipped CPU proof, cut down to 60 MedMCQA items: the teacher learns the items, and the student
really takes on the teacher's answers (agreement up by well over 0.3, KL down), as the full run must;
and the same across two tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer

from backend.tiny_model import make_tiny_model
from tests.fixtures.data import needs_shared_data
from tests.fixtures.distill import run_distill, shipped_config_cut_down, write_config

pytestmark = needs_shared_data

def _cut_down_config(tmp_path: Path, teacher: Path, student: Path, database_url: str) -> Path:
    training = {"epochs": 40, "batch_size": 8, "save_steps": 1000}
    raw = shipped_config_cut_down(
        tmp_path, teacher=teacher, student=student, database_url=database_url, items=60, training=training
    )
    return write_config(tmp_path, raw)


def _distil(config: Path) -> dict:
    result = run_distill(config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((config.parent / "run" / "metrics.json").read_text())


def test_the_cut_down_proof_shows_real_transfer(tmp_path: Path, tiny_model_dir: Path, sqlite_url: str) -> None:
    metrics = _distil(_cut_down_config(tmp_path, tiny_model_dir, tiny_model_dir, sqlite_url))
    transfer = metrics["transfer"]
    assert transfer["n"] >= 40
    assert transfer["teacher"]["accuracy"] >= 0.8  # the fine-tuned teacher knows the items
    before, after = transfer["student_before"]["agreement"], transfer["student_after"]["agreement"]
    assert after >= 0.8 and after - before >= 0.3, transfer
    assert transfer["kl_teacher_student"]["after"] < transfer["kl_teacher_student"]["before"]
    validation = metrics["validation"]
    assert validation["n"] >= 5
    assert all(validation[role]["accuracy"] is not None for role in ("student_before", "student_after"))


def test_sequence_level_distillation_crosses_tokenizers(tmp_path: Path, tiny_model_dir: Path, sqlite_url: str) -> None:
    """As a Llama teacher and a Qwen student would: the student learns the teacher's text in its own tokens."""
    student = make_tiny_model(tmp_path / "student", vocab_size=1024)
    assert AutoTokenizer.from_pretrained(student).get_vocab() != AutoTokenizer.from_pretrained(tiny_model_dir).get_vocab()
    transfer = _distil(_cut_down_config(tmp_path, tiny_model_dir, student, sqlite_url))["transfer"]
    before, after = transfer["student_before"]["agreement"], transfer["student_after"]["agreement"]
    assert after >= 0.8 and after - before >= 0.3, transfer
    kl = transfer["kl_teacher_student"]
    assert kl["before"] is None and kl["after"] is None and "tokenizers differ" in kl["note"]
