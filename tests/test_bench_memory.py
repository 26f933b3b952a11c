"""`bench memory`: exact weight bytes per scheme, measured against real quantisers, and stored runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from backend.bench.memory import (
    ShapeError,
    WeightTensor,
    add_memory_command,
    gguf_type,
    int8_rowwise_bytes,
    load_shape,
    memory_report,
    nf4_bytes,
    nf4_double_quant_bytes,
    shipped_shapes,
    w4a16_bytes,
)
from backend.compress.quantize import quantize_python
from storage.benchmark_runs import BenchmarkRunStore
from storage.db import Database

SMALL_SHAPE = {
    "model_type": "qwen2",
    "architectures": ["Qwen2ForCausalLM"],
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "tie_word_embeddings": False,
}


def _linear(rows: int, columns: int, name: str = "model.layers.0.mlp.up_proj.weight") -> WeightTensor:
    return WeightTensor(name=name, role="linear", shape=(rows, columns), layer=0)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench")
    add_memory_command(bench.add_subparsers(dest="bench_command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def test_shipped_shapes_have_the_published_sizes() -> None:
    assert shipped_shapes() == [
        "deepseek-r1-distill-llama-70b",
        "deepseek-r1-distill-qwen-1.5b",
        "deepseek-r1-distill-qwen-7b",
    ]
    seven = memory_report(load_shape("deepseek-r1-distill-qwen-7b"))
    assert seven["parameters"] == 7_615_616_512
    assert seven["schemes"]["bf16"]["weight_bytes"] == 2 * seven["parameters"]
    assert seven["tied_embeddings"] is False
    small = memory_report(load_shape("deepseek-r1-distill-qwen-1.5b"))
    assert small["parameters"] == 1_777_088_000  # 3.55 GB in bf16, as published
    large = memory_report(load_shape("deepseek-r1-distill-llama-70b"))
    assert large["parameters"] == 70_553_706_496


def test_seven_b_four_bit_schemes_against_the_target() -> None:
    schemes = memory_report(load_shape("deepseek-r1-distill-qwen-7b"))["schemes"]
    # With embeddings and head in bf16 (1.09 B of 7.6 B parameters), linear-only 4-bit stays above 0.30.
    assert 0.36 < schemes["nf4"]["fraction_of_bf16"] < 0.37
    assert 0.36 < schemes["w4a16"]["fraction_of_bf16"] < 0.37
    assert schemes["gguf-q4_k_m"]["fraction_of_bf16"] > 0.30
    # The deployable scheme that meets the target: llama.cpp's Q4_K_S.
    assert schemes["gguf-q4_k_s"]["fraction_of_bf16"] <= 0.30
    for entry in schemes.values():
        assert entry["reduction_vs_bf16"] == pytest.approx(1 - entry["fraction_of_bf16"], abs=1e-6)


def test_nf4_layout_matches_what_bitsandbytes_stores() -> None:
    import bitsandbytes.functional as bnb_functional

    weight = torch.randn(300, 200, dtype=torch.bfloat16)  # 60,000 weights: 938 blocks, 4 nested blocks
    codes, state = bnb_functional.quantize_4bit(weight, blocksize=64, compress_statistics=True, quant_type="nf4")
    stored = codes.nbytes + state.absmax.nbytes + state.code.nbytes + state.state2.absmax.nbytes
    stored += state.state2.code.nbytes
    assert nf4_double_quant_bytes(_linear(300, 200)) == stored

    codes, state = bnb_functional.quantize_4bit(weight, blocksize=64, compress_statistics=False, quant_type="nf4")
    assert nf4_bytes(_linear(300, 200)) == codes.nbytes + state.absmax.nbytes + state.code.nbytes

    codes, scales, _ = bnb_functional.int8_vectorwise_quant(weight.half())
    assert int8_rowwise_bytes(_linear(300, 200)) == codes.nbytes + scales.nbytes


def test_w4a16_layout() -> None:
    # 3584 inputs: 448 int32 words and 28 bf16 scales per row, plus the int64 shape pair.
    assert w4a16_bytes(_linear(18944, 3584)) == 18944 * 448 * 4 + 18944 * 28 * 2 + 16


def test_gguf_mixes_follow_llama_quantize() -> None:
    def v_proj(layer: int) -> WeightTensor:
        return WeightTensor(f"model.layers.{layer}.self_attn.v_proj.weight", "linear", (512, 3584), layer)

    q6_layers = [layer for layer in range(28) if gguf_type(v_proj(layer), False, 28, "Q4_K_M") == "Q6_K"]
    assert q6_layers == [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]  # use_more_bits: half of 28
    assert gguf_type(v_proj(3), False, 28, "Q4_K_M") == "Q4_K"
    assert gguf_type(v_proj(11), False, 80, "Q4_K_M") == "Q5_K"  # the 70B rule
    assert gguf_type(v_proj(3), False, 28, "Q4_K_S") == "Q5_K"
    assert gguf_type(v_proj(4), False, 28, "Q4_K_S") == "Q4_K"
    embedding = WeightTensor("model.embed_tokens.weight", "embedding", (1000, 256), None)
    assert gguf_type(embedding, False, 28, "Q4_K_M") == "Q4_K"
    assert gguf_type(embedding, True, 28, "Q4_K_M") == "Q6_K"  # tied: quantised like the output
    narrow = WeightTensor("model.layers.0.mlp.up_proj.weight", "linear", (256, 96), 0)
    assert gguf_type(narrow, False, 28, "Q4_K_M") == "Q5_0"  # 96 columns: no 256 super-block
    norm = WeightTensor("model.norm.weight", "other", (256,), None)
    assert gguf_type(norm, False, 28, "Q4_K_M") == "F32"


def test_w4a16_not_applicable_when_inputs_do_not_divide_the_group(tmp_path: Path) -> None:
    config = tmp_path / "narrow.json"
    config.write_text(json.dumps({**SMALL_SHAPE, "hidden_size": 64, "intermediate_size": 256}), encoding="utf-8")
    w4a16 = memory_report(load_shape(str(config)))["schemes"]["w4a16"]
    assert w4a16["weight_bytes"] is None
    assert "64 inputs, not a multiple of the group size 128" in w4a16["not_applicable"]


def test_bad_configs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match="no such shape.*deepseek-r1-distill-qwen-7b"):
        load_shape("qwen-9b")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ShapeError, match="broken.json: not valid JSON"):
        load_shape(str(broken))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"model_type": "no-such-arch"}), encoding="utf-8")
    with pytest.raises(ShapeError, match="'no-such-arch' is not an architecture"):
        load_shape(str(unknown))
    with pytest.raises(ShapeError, match="config.json is missing"):
        load_shape(str(tmp_path))


def test_memory_command_prints_writes_and_stores(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDLITE_DATABASE_URL", sqlite_url)
    out = tmp_path / "report.json"
    assert _run(["bench", "memory", "--config", "deepseek-r1-distill-qwen-7b", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "deepseek-r1-distill-qwen-7b: qwen2, 7,615,616,512 parameters" in printed
    assert "gguf-q4_k_s" in printed
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["schemes"]["w4a16"]) >= {"weight_bytes", "reduction_vs_bf16"}
    runs = BenchmarkRunStore(Database(sqlite_url)).list(kind="memory")
    assert len(runs) == 1
    assert runs[0].subject == "deepseek-r1-distill-qwen-7b"
    assert runs[0].results["schemes"] == report["schemes"]


def test_measure_matches_the_computed_bytes(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDLITE_DATABASE_URL", sqlite_url)
    config = tmp_path / "small.json"
    config.write_text(json.dumps(SMALL_SHAPE), encoding="utf-8")
    out = tmp_path / "report.json"
    assert _run(["bench", "memory", "--config", str(config), "--measure", "--work-dir", str(tmp_path), "--out", str(out)]) == 0
    assert "measured (" in capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    measured = report["measured"]["schemes"]
    for scheme in ("bf16", "nf4", "nf4+int8-embed-head", "nf4+nf4-embed-head"):
        assert measured[scheme]["measured_bytes"] == report["schemes"][scheme]["weight_bytes"], scheme
    assert measured["nf4"]["on_disk_bytes"] > measured["nf4"]["measured_bytes"]  # plus header and metadata
    if quantize_python() is not None:
        assert measured["w4a16"]["measured_bytes"] == report["schemes"]["w4a16"]["weight_bytes"]
    else:
        assert "missing" in measured["w4a16"]["note"]
    assert report["measured"]["peak_rss_bytes"] > 0
    assert list(tmp_path.glob("medlite-bench-memory-*")) == []  # the random checkpoints are gone


def test_measure_refuses_shapes_that_do_not_fit(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDLITE_DATABASE_URL", sqlite_url)
    with pytest.raises(ShapeError, match="--measure needs about .* GiB of free memory"):
        _run(["bench", "memory", "--config", "deepseek-r1-distill-llama-70b", "--measure", "--work-dir", str(tmp_path)])
    assert BenchmarkRunStore(Database(sqlite_url)).list() == []


def test_benchmark_run_store(database: Database) -> None:
    from storage.repository import Store

    runs = BenchmarkRunStore(database)
    first = runs.add(user_name="cli", kind="memory", subject="7b", device="computed", results={"schemes": {}})
    second = runs.add(user_name="admin", kind="serve", subject="tiny", device="cpu", results={"rows": [1, 2]})
    assert runs.get(first).results == {"schemes": {}}
    assert runs.get(999) is None
    assert [run.id for run in runs.list()] == [second, first]
    assert [run.id for run in runs.list(kind="serve")] == [second]
    assert runs.get(second).created_at.tzinfo is not None
    with pytest.raises(ValueError, match="kind must be one of memory, serve, gpu"):
        runs.add(user_name="cli", kind="speed", subject="x", device="cpu", results={})
    with pytest.raises(ValueError, match="results cannot be stored as JSON"):
        runs.add(user_name="cli", kind="gpu", subject="x", device="cpu", results={"value": float("nan")})
    with pytest.raises(ValueError, match="subject must not be empty"):
        runs.add(user_name="cli", kind="gpu", subject=" ", device="cpu", results={})
    with pytest.raises(ValueError, match="limit"):
        runs.list(limit=0)
    assert len(runs.list()) == 2  # refused calls stored nothing
    actions = [entry.action for entry in Store(database).list_audit_log()]
    assert actions.count("benchmark.add") == 2


# ---------------------------------------------------------------- the GPU script's parts that run here


def test_int4_weight_only_layout_round_trips() -> None:
    from backend.bench.gpu_7b import dequantize_int4_symmetric, quantize_int4_symmetric, tinygemm_scales_and_zeros

    weight = torch.randn(64, 256)
    codes, scales = quantize_int4_symmetric(weight)
    assert codes.shape == (64, 256) and scales.shape == (64, 2)
    assert int(codes.min()) >= 0 and int(codes.max()) <= 15
    error = (dequantize_int4_symmetric(codes, scales) - weight).abs().reshape(64, 2, 128)
    assert bool((error <= scales.unsqueeze(-1) / 2 + 1e-6).all())  # round to nearest: half a step at most
    assert tinygemm_scales_and_zeros(scales).shape == (2, 64, 2)
    with pytest.raises(ValueError, match="100 inputs cannot be split into groups of 128"):
        quantize_int4_symmetric(torch.randn(8, 100))


def test_int4_linear_matches_its_dequantized_weights() -> None:
    from backend.bench.gpu_7b import _int4_linear_class, dequantize_int4_symmetric, quantize_int4_symmetric

    linear = torch.nn.Linear(256, 64, bias=True).to(torch.bfloat16)
    layer = _int4_linear_class()(linear)
    x = torch.randn(3, 5, 256, dtype=torch.bfloat16)
    codes, scales = quantize_int4_symmetric(linear.weight.data)
    expected = x.float() @ dequantize_int4_symmetric(codes, scales).t() + linear.bias.float()
    assert layer(x).shape == (3, 5, 64)
    assert torch.allclose(layer(x).float(), expected, atol=0.25, rtol=0.02)


def test_ratios_and_table_use_bf16_from_the_same_run() -> None:
    from backend.bench.gpu_7b import add_ratios, format_table, parse_schemes

    def figures(decode: float, throughput: float, weights: int, peak: int) -> dict[str, float | int]:
        return {
            "weight_bytes": weights,
            "time_to_first_token_s": 0.02,
            "decode_s_per_token": decode,
            "batch1_tokens_per_s": 1 / decode,
            "batch16_tokens_per_s": throughput,
            "peak_memory_bytes": peak,
        }

    schemes = {
        "bf16": figures(0.010, 1000.0, 4000, 5000),
        "w4a16": figures(0.008, 1500.0, 1000, 2000),
        "nf4": {"error": "ImportError: no bitsandbytes"},
    }
    add_ratios(schemes, batch=16)
    assert schemes["w4a16"]["decode_latency_vs_bf16"] == pytest.approx(0.8)
    assert schemes["w4a16"]["throughput_vs_bf16"] == pytest.approx(1.5)
    assert schemes["w4a16"]["peak_memory_vs_bf16"] == pytest.approx(0.4)
    report = {
        "shape": "7b",
        "device": "H200",
        "plan": {"prompt_tokens": 128, "new_tokens": 64, "batch": 16, "repeats": 3},
        "schemes": schemes,
    }
    table = format_table(report)
    assert "nf4     failed: ImportError: no bitsandbytes" in table
    assert "0.800" in table and "1.500" in table
    assert parse_schemes("bf16, w4a16") == ("bf16", "w4a16")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_schemes("bf16,awq")


def test_gpu_script_runs_end_to_end_on_a_small_shape_on_cpu(tmp_path: Path) -> None:
    from backend.bench.gpu_7b import main

    config = tmp_path / "small.json"
    config.write_text(json.dumps(SMALL_SHAPE), encoding="utf-8")
    out = tmp_path / "gpu.json"
    argv = ["--config", str(config), "--device", "cpu", "--prompt-tokens", "8", "--new-tokens", "3"]
    assert main([*argv, "--batch", "2", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    schemes = report["schemes"]
    assert list(schemes) == ["bf16", "nf4", "w4a16"]
    assert all("error" not in entry for entry in schemes.values()), schemes
    assert schemes["nf4"]["weight_bytes"] < schemes["bf16"]["weight_bytes"]
    assert schemes["w4a16"]["weight_bytes"] < schemes["bf16"]["weight_bytes"]
    assert "decode_latency_vs_bf16" in schemes["w4a16"]
