"""Progress a person and the admin tab can follow: a JSON-lines file, a log file, and a clean stop on SIGTERM.

The terminal's tqdm bar is the Trainer's own; these callbacks add the files in the run's folder and
turn SIGTERM into "stop at the next step boundary and save a checkpoint", so a killed job resumes.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

PROGRESS_FILE = "progress.jsonl"
LOG_FILE = "distill.log"

log = logging.getLogger("backend.distill")


def setup_logging(output_dir: Path) -> None:
    """Send the pipeline's log to `distill.log` in the run's folder as well as the terminal."""
    output_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(output_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def write_progress(output_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON object to the run's progress file (one line each, readable while the run goes on)."""
    with (output_dir / PROGRESS_FILE).open("a", encoding="utf-8") as file:
        file.write(json.dumps({"time": time.time(), **record}) + "\n")


def read_progress(output_dir: Path) -> list[dict[str, Any]]:
    path = output_dir / PROGRESS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class ProgressFileCallback(TrainerCallback):
    """Writes step, total steps, loss, eval loss, learning rate, elapsed and remaining seconds per log."""

    def __init__(self, output_dir: Path, stage: str) -> None:
        self.output_dir = output_dir
        self.stage = stage
        self._started = 0.0
        self._first_step = 0

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._started = time.monotonic()
        self._first_step = state.global_step  # after a resume, the speed counts only this session's steps
        if state.is_world_process_zero:
            write_progress(
                self.output_dir,
                {"stage": self.stage, "event": "start", "step": state.global_step, "total_steps": state.max_steps},
            )

    def on_log(self, args, state: TrainerState, control, logs: dict[str, float] | None = None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        elapsed = time.monotonic() - self._started
        done = state.global_step - self._first_step
        remaining = elapsed / done * (state.max_steps - state.global_step) if done > 0 else None
        record = {
            "stage": self.stage,
            "event": "log",
            "step": state.global_step,
            "total_steps": state.max_steps,
            "loss": logs.get("loss"),
            "eval_loss": logs.get("eval_loss"),
            "learning_rate": logs.get("learning_rate"),
            "elapsed_s": round(elapsed, 2),
            "remaining_s": round(remaining, 2) if remaining is not None else None,
        }
        write_progress(self.output_dir, record)
        log.info("%s step %s/%s loss=%s", self.stage, state.global_step, state.max_steps, record["loss"])

    def on_save(self, args, state: TrainerState, control, **kwargs):
        if state.is_world_process_zero:
            write_progress(
                self.output_dir,
                {"stage": self.stage, "event": "checkpoint", "step": state.global_step, "total_steps": state.max_steps},
            )


class StopOnSignal(TrainerCallback):
    """On SIGTERM (or SIGINT), finish the current step, save a checkpoint and stop training."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.received: int | None = None
        self._signals = signals
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        log.info("signal %s received: stopping at the next step boundary", signum)

    def on_train_begin(self, args, state, control, **kwargs):
        for signum in self._signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_step_end(self, args, state: TrainerState, control: TrainerControl, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class Stopped(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; running again resumes there."""
