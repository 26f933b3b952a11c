"""The distillation pipeline end to end on tiny models: killed and restarted it resumes from its
checkpoint; SIGTERM stops it at a step boundary with a checkpoint saved; runs are stored."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import yaml

from backend.distill.progress import read_progress
from storage.db import Database
from storage.distillation_runs import DistillationRunStore
from tests.fixtures.data import SHARED_DATA, needs_shared_data
from tests.fixtures.distill import distill_command, offline_env, run_distill

pytestmark = needs_shared_data


def _config(tmp_path: Path, model: Path, database_url: str, teacher_steps: int) -> Path:
    lora = {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "rank": 8, "alpha": 16, "dropout": 0.0}
    training = {
        "max_steps": teacher_steps,
        "batch_size": 4,
        "learning_rate": 0.005,
        "max_length": 96,
        "save_steps": 2,
        "logging_steps": 1,
    }
    raw = {
        "name": "cut-down",
        "output_dir": str(tmp_path / "run"),
        "threads": 1,
        "database_url": database_url,
        "data": {
            "sources": [{"kind": "medmcqa", "path": str(SHARED_DATA / "medmcqa"), "limit": 24}],
            "prompt_style": "compact",
            "include_reasoning": False,
        },
        "teacher": {"model": str(model), "lora": lora, "training": training},
        "student": {"model": str(model), "lora": lora, "training": {**training, "max_steps": 4}},
        "generation": {"max_new_tokens": 48, "keep_contradicting": True},
        "evaluation": {"max_new_tokens": 12, "batch_size": 8, "transfer_limit": 8, "validation_limit": 4},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _start(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        distill_command(config),
        env=offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_checkpoint(process: subprocess.Popen, run_dir: Path, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        saved = [r for r in read_progress(run_dir) if r.get("event") == "checkpoint" and r["stage"] == "teacher"]
        if saved:
            return saved[-1]["step"]
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise AssertionError("no checkpoint written in time")


def _runs(database_url: str) -> list:
    return DistillationRunStore(Database.open(database_url)).list()


def test_killed_run_resumes_from_its_checkpoint_and_finishes(
    tmp_path: Path, tiny_model_dir: Path, sqlite_url: str
) -> None:
    config = _config(tmp_path, tiny_model_dir, sqlite_url, teacher_steps=40)
    run_dir = tmp_path / "run"
    first = _start(config)
    _wait_for_checkpoint(first, run_dir)
    first.kill()
    first.wait()
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (run_dir / "teacher" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "the kill came after a checkpoint"

    second = run_distill(config, timeout_s=600)
    assert second.returncode == 0, second.stdout + second.stderr
    starts = [r for r in read_progress(run_dir) if r["stage"] == "teacher" and r.get("event") == "start"]
    assert len(starts) == 2
    assert starts[1]["step"] >= checkpoints[-1] > 0  # resumed at the checkpoint, not from step 0
    assert "resuming from" in (run_dir / "distill.log").read_text()

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("transfer", "validation"):
        assert metrics[name]["teacher"]["accuracy"] is not None
        for role in ("student_before", "student_after"):
            assert set(metrics[name][role]) == {"accuracy", "agreement"}
        assert metrics[name]["kl_teacher_student"]["before"] >= 0
        assert metrics[name]["kl_teacher_student"]["after"] >= 0
    assert "distilled student" in (run_dir / "student" / "merged" / "README.md").read_text()
    assert (run_dir / "student" / "merged" / "model.safetensors").is_file()

    newest, killed = _runs(sqlite_url)
    assert newest.status == "complete" and newest.metrics == metrics
    assert killed.status == "running"  # SIGKILL leaves no chance to record anything


def test_sigterm_stops_at_a_step_boundary_with_a_checkpoint(
    tmp_path: Path, tiny_model_dir: Path, sqlite_url: str
) -> None:
    config = _config(tmp_path, tiny_model_dir, sqlite_url, teacher_steps=400)
    run_dir = tmp_path / "run"
    process = _start(config)
    _wait_for_checkpoint(process, run_dir)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 3, output
    assert "stopped: stopped by signal" in output
    records = read_progress(run_dir)
    last_step = max(r["step"] for r in records if "step" in r)
    saved = [r["step"] for r in records if r.get("event") == "checkpoint"]
    # It stopped long before the end and saved at the step it stopped on, not just the regular checkpoints.
    assert saved[-1] == last_step and 0 < last_step < 400
    assert (run_dir / "teacher" / "checkpoints" / f"checkpoint-{last_step}").is_dir()
    [run] = _runs(sqlite_url)
    assert run.status == "stopped" and "run again to resume" in run.error
