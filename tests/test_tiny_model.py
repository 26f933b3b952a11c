"""The tiny test model: R1's tokenizer shape, chat template and reply format, built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from backend.tiny_model import ASSISTANT, BOS, EOS, THINK_CLOSE, THINK_OPEN, USER, make_tiny_model


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_saves_a_qwen2_model_with_generation_config(tiny_model_dir: Path) -> None:
    assert (tiny_model_dir / "model.safetensors").is_file()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert (config["num_hidden_layers"], config["hidden_size"]) == (2, 64)
    generation = json.loads((tiny_model_dir / "generation_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert generation["eos_token_id"] == tokenizer.convert_tokens_to_ids(EOS)


def test_tokenizer_has_r1_tokens_as_single_ids(tokenizer) -> None:
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (BOS, EOS, EOS)
    assert 1000 <= len(tokenizer) <= 4096
    for token in (BOS, EOS, USER, ASSISTANT, THINK_OPEN, THINK_CLOSE):
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token


def test_any_text_round_trips(tokenizer) -> None:
    text = "Glioblastoma 多形性胶质母细胞瘤 ½ dose — 😷 mg/kg"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_think_tags_survive_skipping_special_tokens(tokenizer) -> None:
    ids = tokenizer.encode(f"{USER}a{THINK_OPEN}b{THINK_CLOSE}c{EOS}", add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == f"a{THINK_OPEN}b{THINK_CLOSE}c"


def test_chat_template_is_r1s(tokenizer) -> None:
    messages = [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "old reasoning</think>\n\nA1"},
        {"role": "user", "content": "Q2"},
    ]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == f"{BOS}{USER}Q1{ASSISTANT}\n\nA1{EOS}{USER}Q2{ASSISTANT}{THINK_OPEN}\n"


def test_sampled_replies_have_reasoning_answer_and_end(tiny_model_dir: Path, tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = ["Hi", "What is the first-line drug for hypertension?", "患者男性，胸痛。", "chest pain " * 300]
    for seed in range(12):
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompts[seed % len(prompts)]}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        torch.manual_seed(seed)
        output = model.generate(**inputs, do_sample=True, temperature=0.6, top_p=0.95, max_new_tokens=80)
        reply = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :])
        reasoning, _, answer = reply.partition(THINK_CLOSE)
        assert reasoning.strip(), reply
        assert answer.strip().startswith("The answer is "), reply
        assert reply.endswith(EOS), reply


def test_same_seed_builds_the_same_model(tmp_path: Path) -> None:
    first = make_tiny_model(tmp_path / "a", train_steps=3, seed=5)
    second = make_tiny_model(tmp_path / "b", train_steps=3, seed=5)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_size_options_and_their_checks(tmp_path: Path) -> None:
    out = make_tiny_model(tmp_path / "wide", layers=1, hidden=32, train_steps=0)
    config = json.loads((out / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]) == (1, 32, 128)
    with pytest.raises(ValueError, match="hidden must be a positive multiple of 8, got 30"):
        make_tiny_model(tmp_path / "bad", hidden=30)
    with pytest.raises(ValueError, match="layers must be at least 1"):
        make_tiny_model(tmp_path / "bad", layers=0)
