"""`quantize`: bad input stops before heavy work; NF4 (and W4A16 where its environment exists) really run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, ViTConfig

from backend.compress.card import Card, render_card, weight_file_bytes
from backend.compress.cli import add_quantize_command
from backend.compress.quantize import (
    QUANTIZE_PYTHON_ENV,
    QuantizeError,
    calibration_prompts,
    check_disk_space,
    quantize_python,
)
from backend.evaluate.datasets import load_pubmedqa
from backend.tiny_model import make_tiny_model
from tests.fixtures.data import SHARED_DATA, needs_shared_data


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_quantize_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def _quantize(model: Path, method: str, out: Path, *extra: str) -> int:
    return _run(["quantize", "--model", str(model), "--method", method, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def tiny_model_128(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model whose layers take multiples of 128 inputs, as W4A16 groups need."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-128"), hidden=128, train_steps=0)


def test_bad_model_folders_are_named(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(QuantizeError, match="no such folder"):
        _quantize(tmp_path / "missing", "nf4", out)
    a_file = tmp_path / "weights.safetensors"
    a_file.write_bytes(b"x")
    with pytest.raises(QuantizeError, match="is a file; expected a model folder"):
        _quantize(a_file, "nf4", out)
    with pytest.raises(QuantizeError, match="not a model folder \\(config.json is missing\\)"):
        _quantize(tmp_path, "nf4", out)

    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "no-such-arch"}), encoding="utf-8")
    with pytest.raises(QuantizeError, match="unsupported architecture .*'no-such-arch'"):
        _quantize(unknown, "nf4", out)

    vision = tmp_path / "vit"
    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(vision)
    with pytest.raises(QuantizeError, match="unsupported architecture 'vit'; quantize takes causal language models"):
        _quantize(vision, "nf4", out)
    assert not out.exists()


def test_folder_without_weights_or_tokenizer(tmp_path: Path, tiny_model_dir: Path) -> None:
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_bytes((tiny_model_dir / "config.json").read_bytes())
    with pytest.raises(QuantizeError, match="no weight files"):
        _quantize(no_weights, "nf4", tmp_path / "out")
    (no_weights / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes())
    with pytest.raises(QuantizeError, match="no tokenizer files"):
        _quantize(no_weights, "nf4", tmp_path / "out")


def test_existing_output_and_full_disk_are_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("stored earlier", encoding="utf-8")
    with pytest.raises(QuantizeError, match="already exists and is not empty"):
        _quantize(tiny_model_dir, "nf4", taken)
    assert (taken / "keep.txt").read_text(encoding="utf-8") == "stored earlier"
    with pytest.raises(QuantizeError, match="not enough disk space: the quantised model needs up to"):
        check_disk_space(tmp_path / "new" / "folder", 1 << 60)


def test_w4a16_checks_run_before_any_work(
    tmp_path: Path, tiny_model_dir: Path, tiny_model_128: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(QuantizeError, match="has 64 inputs, not a multiple of the group size 128"):
        _quantize(tiny_model_dir, "w4a16", tmp_path / "out")
    monkeypatch.setenv(QUANTIZE_PYTHON_ENV, str(tmp_path / "no-such-python"))
    with pytest.raises(QuantizeError, match="own environment.*pip install -r requirements-quantize.txt"):
        _quantize(tiny_model_128, "w4a16", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial").exists()


def test_nf4_quantizes_the_tiny_model_on_cpu(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import bitsandbytes as bnb

    out = tmp_path / "tiny-nf4"
    assert _quantize(tiny_model_dir, "nf4", out) == 0
    assert "nf4 checkpoint written to" in capsys.readouterr().out
    assert not out.with_name("tiny-nf4.partial").exists()

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.quantization_config.bnb_4bit_quant_type == "nf4"
    assert model.config.quantization_config.bnb_4bit_use_double_quant is True
    assert isinstance(model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    tokenizer = AutoTokenizer.from_pretrained(out)
    generated = model.generate(**tokenizer("Chest pain", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > 2

    card = (out / "README.md").read_text(encoding="utf-8")
    assert "bitsandbytes NF4, double quantisation, bf16 compute" in card
    assert f"| quantised weight files (measured) | {weight_file_bytes(out):,} bytes |" in card
    assert f"| source weight files | {weight_file_bytes(tiny_model_dir):,} bytes |" in card
    assert "--quantize bitsandbytes-nf4" in card and "--quantization bnb-4bit" in card
    assert f'from_pretrained("{out}")' in card  # the final folder, not the .partial one it was written in
    assert weight_file_bytes(out) < weight_file_bytes(tiny_model_dir)

    with pytest.raises(QuantizeError, match="already quantised \\(bitsandbytes\\)"):
        _quantize(out, "nf4", tmp_path / "again")


def test_card_lists_calibration_and_serving_lines(tmp_path: Path) -> None:
    card = Card(
        method="w4a16",
        source_model="/models/student",
        architecture="Qwen2ForCausalLM",
        source_bytes=4000,
        output_bytes=1000,
        calibration={"description": "Exam prompts.", "sources": {"PubMedQA (en)": 6, "CMMLU (zh)": 2}, "samples": 8},
        settings={"group size": 128},
    )
    text = render_card(card, tmp_path / "student-w4a16")
    assert "| size of source | 0.250 |" in text
    assert "- PubMedQA (en): 6 prompts" in text and "- CMMLU (zh): 2 prompts" in text
    assert f"vllm serve {tmp_path / 'student-w4a16'}" in text
    assert "| group size | 128 |" in text


@needs_shared_data
def test_calibration_prompts_avoid_evaluated_items(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts, calibration = calibration_prompts(SHARED_DATA, tokenizer, 12)
    assert len(texts) == calibration["samples"] == 12
    assert list(calibration["sources"].values()) == [9, 3]
    assert all(text.endswith("<｜Assistant｜><think>\n") for text in texts)
    assert sum(any("\u4e00" <= char <= "\u9fff" for char in text) for text in texts) >= 3
    test_questions = {item.question for item in load_pubmedqa(SHARED_DATA / "pubmedqa", split="test")}
    assert not any(question in text for text in texts for question in test_questions)


@needs_shared_data
def test_failed_w4a16_run_leaves_no_checkpoint(
    tmp_path: Path, tiny_model_128: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app's own Python has no llm-compressor: the worker starts, fails, and exits non-zero.
    monkeypatch.setenv(QUANTIZE_PYTHON_ENV, sys.executable)
    out = tmp_path / "tiny-w4a16"
    with pytest.raises(RuntimeError, match="llm-compressor failed \\(exit 1\\)"):
        _quantize(tiny_model_128, "w4a16", out, "--calibration-samples", "4")
    assert not out.exists()
    assert not out.with_name("tiny-w4a16.partial").exists()


@needs_shared_data
@pytest.mark.skipif(
    quantize_python() is None,
    reason="no llm-compressor environment (.venv-quantize); create it with requirements-quantize.txt",
)
def test_w4a16_gptq_checkpoint_loads_in_transformers(tmp_path: Path, tiny_model_128: Path) -> None:
    out = tmp_path / "tiny-w4a16"
    assert _quantize(tiny_model_128, "w4a16", out, "--calibration-samples", "8", "--max-seq-length", "256") == 0
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))["quantization_config"]
    assert config["quant_method"] == "compressed-tensors"
    assert config["ignore"] == ["lm_head"]
    weights = config["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (4, 128, True)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "PubMedQA-L, records outside the 500 test PMIDs (en): 6 prompts" in card
    assert "CMMLU medical, 5-shot dev files (zh): 2 prompts" in card
    model = AutoModelForCausalLM.from_pretrained(out)
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()
