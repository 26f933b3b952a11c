"""The whole run, stage by stage, from one validated config; a rerun skips finished stages and resumes training.

Under `accelerate launch` every process trains; the stages that do not train (teacher writing,
merging, scoring, storing) run on the main process while the others wait.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from transformers import AutoConfig, set_seed

from backend.distill.config import ConfigError, DistillConfig, LoraSettings
from backend.distill.data import build_splits
from backend.distill.generate import ANSWERS_FILE, teacher_answers, teacher_engine
from backend.distill.lora import merge_adapter, write_model_card
from backend.distill.metrics import evaluate_run, evaluation_sets
from backend.distill.progress import Stopped, log, setup_logging, write_progress
from backend.distill.sft import sft_train
from backend.distill.teacher import MERGED_DIR, finetune_teacher, finetuned_teacher_path

STUDENT_STAGE = "student"
METRICS_FILE = "metrics.json"


def _lora_summary(lora: LoraSettings) -> str:
    summary = f"r={lora.rank} alpha={lora.alpha} modules={','.join(lora.target_modules)} layers={lora.layers or 'all'}"
    if lora.modules_to_save:
        summary += f" trained in full: {','.join(lora.modules_to_save)}"
    return summary


def plan(config: DistillConfig, config_path: str) -> list[str]:
    """The resolved stages and the exact commands that run them, as lines for a person to read."""
    out = config.output_path
    if config.teacher.server_url:
        teacher = f"the served teacher at {config.teacher.server_url}"
    elif config.teacher.finetune:
        teacher = f"the fine-tuned teacher ({finetuned_teacher_path(config)})"
    else:
        teacher = config.teacher.model
    sources = ", ".join(f"{s.kind}:{s.path}" + (f" (first {s.limit})" if s.limit else "") for s in config.data.sources)
    lines = [
        f"run {config.name!r} -> {out}",
        f"1. data: {sources}; prompts: {config.data.prompt_style}; validation share {config.data.validation_fraction}"
        f" (seed {config.data.seed})",
    ]
    if config.teacher.finetune:
        t = config.teacher
        lines.append(
            f"2. teacher LoRA SFT of {t.model}: {_lora_summary(t.lora)}; {t.training.epochs} epochs,"
            f" lr {t.training.learning_rate},"
            f" checkpoint every {t.training.save_steps} steps -> {out / 'teacher' / MERGED_DIR}"
        )
    else:
        lines.append(f"2. teacher used as it is: {teacher}")
    s = config.student
    student_lora = _lora_summary(s.lora)
    if config.method == "sequence":
        lines.append(
            f"3. sequence-level: {teacher} writes answers (max {config.generation.max_new_tokens} tokens,"
            f" temperature {config.generation.temperature}); answers contradicting the gold are "
            f"{'kept' if config.generation.keep_contradicting else 'dropped'}; student {s.model} LoRA SFT {student_lora}"
        )
    else:
        lines.append(
            f"3. logit-level (GKD): student {s.model} LoRA {student_lora}; beta={config.logit.beta}"
            f" temperature={config.logit.temperature} lmbda={config.logit.lmbda}"
        )
    lines += [
        f"4. merge the student's adapter -> {out / STUDENT_STAGE / MERGED_DIR} (with a model card)",
        f"5. score teacher, student before and after on transfer and validation items -> {out / METRICS_FILE}",
        "commands:",
        f"  python -m backend distill --config {shlex.quote(config_path)}",
        f"  accelerate launch --config_file configs/accelerate/single-gpu.yaml -m backend distill --config {shlex.quote(config_path)}",
        f"  accelerate launch --config_file configs/accelerate/fsdp-8gpu.yaml -m backend distill --config {shlex.quote(config_path)}",
    ]
    return lines


def _store(config: DistillConfig):
    from backend.settings import Settings
    from storage.db import Database
    from storage.distillation_runs import DistillationRunStore

    url = config.database_url or Settings.from_env().resolved_database_url
    return DistillationRunStore(Database.open(url))


def _teacher_writes(config: DistillConfig, teacher_path: Path, transfer, answers_file: Path):
    """The teacher's kept answers and their summary; the teacher is let go before the student trains."""
    engine = teacher_engine(config, teacher_path)
    try:
        return teacher_answers(config, engine, transfer, answers_file)
    finally:
        engine.close()


def _student_adapter(config: DistillConfig, teacher_path: Path, transfer, validation, state: PartialState) -> Path:
    stage_dir = config.output_path / STUDENT_STAGE
    if config.method == "logit":
        from backend.distill.logit import logit_distill

        return logit_distill(config, teacher_path, transfer, validation)
    answers_file = config.output_path / ANSWERS_FILE
    if state.is_main_process:
        kept, summary = _teacher_writes(config, teacher_path, transfer, answers_file)
        write_progress(config.output_path, {"stage": "generate", "event": "done", **summary.__dict__})
        log.info("teacher answers: %s", summary)
    state.wait_for_everyone()
    if not state.is_main_process:  # every answer is on file by now: nothing is asked again
        kept, summary = _teacher_writes(config, teacher_path, transfer, answers_file)
    if not kept:
        raise RuntimeError(
            f"generation: no teacher answer was kept ({summary.contradicting} contradicted the gold label, "
            f"{summary.unreadable} had no readable answer, {summary.truncated} were cut at "
            "generation.max_new_tokens); nothing to distil"
        )
    return sft_train(
        model=config.student.model,
        examples=kept,
        eval_examples=validation,
        lora=config.student.lora,
        training=config.student.training,
        stage_dir=stage_dir,
        stage=STUDENT_STAGE,
        seed=config.seed,
    )


def check_models(config: DistillConfig) -> None:
    """Every model the run will load can be found (a folder with config.json, or a reachable hub id):
    a typo stops the run here, naming the field, instead of after the teacher has trained."""
    to_load = [("student.model", config.student.model)]
    if not config.teacher.server_url:  # a served teacher's name is only a label here
        to_load.insert(0, ("teacher.model", config.teacher.model))
    for field_name, model in to_load:
        try:
            AutoConfig.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{field_name}: cannot load {model!r}: it is neither a model folder with a config.json nor a hub "
                f"model that can be reached from here ({exc})"
            ) from exc


def run(config: DistillConfig, *, user_name: str = "admin") -> dict[str, Any]:
    """Run every stage; returns metrics.json's content. Raises Stopped after a signal (checkpoint saved)."""
    check_models(config)
    # Without CUDA, processes started by `accelerate launch` join over gloo (multi-CPU) rather than each
    # running alone, so the main-process-only stages below behave as they do on GPUs.
    state = PartialState(cpu=not torch.cuda.is_available())
    out = config.output_path
    setup_logging(out)
    if config.threads:
        torch.set_num_threads(config.threads)
    set_seed(config.seed)
    started = time.monotonic()
    store = run_id = None
    if config.store_run and state.is_main_process:
        store = _store(config)
        run_id = store.start(
            user_name=user_name,
            name=config.name,
            teacher=config.teacher.model,
            student=config.student.model,
            config=config.as_dict(),
            output_dir=str(out.resolve()),
        )
    try:
        transfer, validation = build_splits(config.data)
        if state.is_main_process:
            write_progress(
                out, {"stage": "data", "event": "done", "transfer": len(transfer), "validation": len(validation)}
            )
        teacher_path = (
            finetune_teacher(config, transfer, validation, state) if config.teacher.finetune else Path(config.teacher.model)
        )
        state.wait_for_everyone()
        student_merged = out / STUDENT_STAGE / MERGED_DIR
        if not (student_merged / "config.json").is_file():
            adapter = _student_adapter(config, teacher_path, transfer, validation, state)
            if state.is_main_process:
                merge_adapter(
                    config.student.model,
                    adapter,
                    student_merged,
                    title=f"{config.name}: distilled student",
                    details={"config": config.as_dict()},
                )
        state.wait_for_everyone()
        metrics: dict[str, Any] = {}
        if state.is_main_process:
            sets = evaluation_sets(
                transfer, validation, config.evaluation.transfer_limit, config.evaluation.validation_limit
            )
            served = teacher_engine(config, teacher_path) if config.teacher.server_url else None
            try:
                metrics = evaluate_run(
                    teacher_path=None if served else teacher_path,
                    student_before_path=config.student.model,
                    student_after_path=student_merged,
                    sets=sets,
                    max_new_tokens=config.evaluation.max_new_tokens,
                    batch_size=config.evaluation.batch_size,
                    teacher_engine=served,
                    concurrency=config.generation.concurrency,
                )
            finally:
                if served is not None:
                    served.close()
            metrics["method"] = config.method
            metrics["wall_time_s"] = round(time.monotonic() - started, 1)
            (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
            write_model_card(
                student_merged,
                title=f"{config.name}: distilled student",
                base_model=config.student.model,
                details={
                    "config": config.as_dict(),
                    "data": {"transfer": len(transfer), "validation": len(validation)},
                    "metrics": metrics,
                },
            )
            write_progress(out, {"stage": "metrics", "event": "done"})
            log.info("metrics written to %s", out / METRICS_FILE)
            if store is not None:
                store.finish(run_id, status="complete", metrics=metrics)
        return metrics
    except Stopped as exc:
        if store is not None:
            store.finish(run_id, status="stopped", error=str(exc))
        raise
    except BaseException as exc:
        if store is not None:
            store.finish(run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
