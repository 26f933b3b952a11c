"""The same entry under `accelerate launch` with two processes (over gloo, as there is no GPU here):
both train on halves of each batch, only the main process writes answers, merges and scores, and
the others wait for it instead of reading half-written models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backend.distill.progress import read_progress
from tests.fixtures.data import needs_shared_data
from tests.fixtures.distill import offline_env, shipped_config_cut_down, write_config
from tests.fixtures.processes import free_port

pytestmark = needs_shared_data

STEPS = 6
PER_PROCESS_BATCH = 2


def _config(tmp_path: Path, model: Path, database_url: str) -> Path:
    training = {"max_steps": STEPS, "batch_size": PER_PROCESS_BATCH, "save_steps": 3}
    raw = shipped_config_cut_down(
        tmp_path, teacher=model, student=model, database_url=database_url, items=24, training=training
    )
    raw["generation"]["keep_contradicting"] = True
    raw["evaluation"].update({"transfer_limit": 8, "validation_limit": 4, "max_new_tokens": 12})
    return write_config(tmp_path, raw)


def test_two_launched_processes_train_together_and_the_main_one_scores(
    tmp_path: Path, tiny_model_dir: Path, sqlite_url: str
) -> None:
    config = _config(tmp_path, tiny_model_dir, sqlite_url)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "backend",
        "distill",
        "--config",
        str(config),
    ]
    result = subprocess.run(command, env=offline_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "run"
    records = read_progress(run_dir)
    # One progress stream, from the main process: each stage started once, answers written once.
    assert [r["stage"] for r in records if r.get("event") == "start"] == ["teacher", "student"]
    assert len([r for r in records if r["stage"] == "generate"]) == 1
    # Two processes shared each step: 6 steps of 2 x 2 examples went through the transfer items more than once.
    [data] = [r for r in records if r["stage"] == "data"]
    transfer = data["transfer"]
    state = json.loads((run_dir / "student" / "checkpoints" / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["epoch"] > STEPS * PER_PROCESS_BATCH / transfer
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["transfer"]["n"] == 8 and metrics["validation"]["n"] == 4
    assert (run_dir / "teacher" / "merged" / "model.safetensors").is_file()
    assert (run_dir / "student" / "merged" / "model.safetensors").is_file()
