"""The distillation config: impossible values stop with the field's name; --dry-run prints the plan."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from backend.__main__ import main
from backend.distill.config import ConfigError, config_from_dict, load_config
from backend.distill.logit import VocabularyMismatch, check_same_vocabulary
from backend.tiny_model import build_tokenizer
from storage.db import Database
from storage.distillation_runs import DistillationRunStore

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "distill-tiny-cpu.yaml"


def _raw() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text(encoding="utf-8"))


def test_the_shipped_tiny_config_is_valid() -> None:
    config = load_config(TINY_CONFIG)
    assert config.method == "sequence"
    assert config.student.lora.target_modules[:4] == ["q_proj", "k_proj", "v_proj", "o_proj"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("method",), "ensemble", "method: must be one of sequence, logit"),
        (("teacher", "training", "learning_rate"), 0, "teacher.training.learning_rate: must be in (0, 1)"),
        (("student", "training", "batch_size"), 0, "student.training.batch_size: must be at least 1"),
        (("student", "lora", "rank"), 0, "lora.rank: must be at least 1"),
        (("student", "lora", "layers"), "3-1", "lora.layers: range '3-1' ends before it starts"),
        (("data", "validation_fraction"), 1.0, "data.validation_fraction: must be between 0 and 1"),
        (("data", "prompt_style"), "long", "data.prompt_style: must be one of template, compact"),
        (("logit", "beta"), 2, "logit.beta: must be in [0, 1]"),
        (("generation", "concurrency"), 0, "generation.concurrency: must be at least 1"),
        (("student", "training", "typo_field"), 1, "student.training.typo_field: unknown setting"),
    ],
)
def test_an_impossible_value_names_its_field(path: tuple[str, ...], value: object, message: str) -> None:
    raw = _raw()
    target = raw
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw)
    assert message in str(caught.value)


def test_a_missing_required_setting_is_named() -> None:
    raw = _raw()
    del raw["student"]["model"]
    with pytest.raises(ConfigError, match=r"student\.model: required setting is missing"):
        config_from_dict(raw)


def test_a_layer_range_expands_to_a_list() -> None:
    raw = _raw()
    raw["student"]["lora"]["layers"] = "1-3"
    assert config_from_dict(raw).student.lora.layers == [1, 2, 3]


def test_a_served_teacher_cannot_give_logits() -> None:
    raw = _raw()
    raw["method"] = "logit"
    raw["teacher"].update(finetune=False, server_url="http://127.0.0.1:8080/v1")
    with pytest.raises(ConfigError, match=r"teacher\.server_url: .*method: sequence"):
        config_from_dict(raw)


def test_the_file_is_named_when_it_is_broken(tmp_path: Path) -> None:
    broken = tmp_path / "run.yaml"
    broken.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"run\.yaml: not valid YAML"):
        load_config(broken)


def test_dry_run_prints_the_plan_and_exact_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["distill", "--config", str(TINY_CONFIG), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "1. data: medmcqa:../shared/data/medmcqa (first 300); prompts: compact" in printed
    assert "2. teacher LoRA SFT of var/tiny/teacher: r=32 alpha=64" in printed
    assert "trained in full: embed_tokens" in printed
    assert "3. sequence-level:" in printed and "dropped" in printed
    assert f"python -m backend distill --config {TINY_CONFIG}" in printed
    assert "accelerate launch --config_file configs/accelerate/fsdp-8gpu.yaml -m backend distill" in printed
    assert "metrics.json" in printed


def test_a_bad_value_stops_the_command_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _raw()
    raw["output_dir"] = str(tmp_path / "out")
    raw["student"]["training"]["epochs"] = -1
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["distill", "--config", str(config_file)]) == 2
    assert "student.training.epochs: must be above 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_model_that_cannot_be_found_stops_the_run_naming_the_field(
    tmp_path: Path, tiny_model_dir: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _raw()
    raw["output_dir"] = str(tmp_path / "out")
    raw["database_url"] = sqlite_url
    raw["teacher"]["model"] = str(tiny_model_dir)
    raw["student"]["model"] = str(tmp_path / "no-such-student")
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["distill", "--config", str(config_file)]) == 2
    assert f"student.model: cannot load '{tmp_path / 'no-such-student'}'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # stopped before any work
    assert DistillationRunStore(Database.open(sqlite_url)).list() == []  # and no run was recorded


def test_different_vocabularies_are_refused_pointing_to_sequence_level(tmp_path: Path) -> None:
    build_tokenizer(vocab_size=2048).save_pretrained(tmp_path / "teacher")
    build_tokenizer(vocab_size=1024).save_pretrained(tmp_path / "student")
    with pytest.raises(VocabularyMismatch, match=r"share one vocabulary.*Use method: sequence"):
        check_same_vocabulary(tmp_path / "teacher", tmp_path / "student")
    check_same_vocabulary(tmp_path / "teacher", tmp_path / "teacher")  # the same tokenizer passes
