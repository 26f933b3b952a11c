"""The one validated configuration of a distillation run, read from YAML.

Written in TRL's style: every field carries its help text in `metadata["help"]`, and each section
checks itself in `__post_init__`, so an impossible value stops the run with a message naming the
field (as `section.field`) before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

METHODS = ("sequence", "logit")
SOURCE_KINDS = ("medmcqa", "pubmedqa", "jsonl")
PROMPT_STYLES = ("template", "compact")
_LAYERS_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class ConfigError(ValueError):
    """The configuration file is unreadable or holds an impossible value; the message names the field."""


def _require(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{name}: {message}")


@dataclass
class DataSource:
    kind: str = field(metadata={"help": "medmcqa (with its explanations), pubmedqa (with LONG_ANSWER) or jsonl."})
    path: str = field(metadata={"help": "The data file or its folder; jsonl: lines of {prompt, answer[, gold]}."})
    limit: int | None = field(default=None, metadata={"help": "Read at most this many records from the source."})

    def __post_init__(self) -> None:
        _require(
            self.kind in SOURCE_KINDS,
            "data.sources.kind",
            f"must be one of {', '.join(SOURCE_KINDS)}, got {self.kind!r}",
        )
        _require(bool(self.path), "data.sources.path", "must name a file or folder")
        _require(self.limit is None or self.limit >= 1, "data.sources.limit", f"must be at least 1, got {self.limit}")


@dataclass
class DataConfig:
    sources: list[DataSource] = field(
        default_factory=list, metadata={"help": "Where the prompt/answer pairs come from (at least one)."}
    )
    prompt_style: str = field(
        default="template",
        metadata={
            "help": "template: the app's exam template, as clinicians' questions are rendered (real runs). "
            "compact: the question alone, for tiny models whose attention window is short."
        },
    )
    include_reasoning: bool = field(
        default=True,
        metadata={"help": "Put the data set's explanation (MedMCQA exp, PubMedQA LONG_ANSWER) in the reasoning."},
    )
    validation_fraction: float = field(
        default=0.2, metadata={"help": "Share of items held out for validation, chosen by a seeded hash of the id."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the train/validation split."})

    def __post_init__(self) -> None:
        _require(len(self.sources) >= 1, "data.sources", "list at least one source")
        _require(
            self.prompt_style in PROMPT_STYLES,
            "data.prompt_style",
            f"must be one of {', '.join(PROMPT_STYLES)}, got {self.prompt_style!r}",
        )
        _require(
            0.0 < self.validation_fraction < 1.0,
            "data.validation_fraction",
            f"must be between 0 and 1 (exclusive), got {self.validation_fraction}",
        )


@dataclass
class LoraSettings:
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "Module names that get LoRA adapters; the default is the key attention projections."},
    )
    layers: list[int] | str | None = field(
        default=None, metadata={"help": "Only these decoder layers: a list [0, 1] or a range '0-3' (inclusive)."}
    )
    rank: int = field(default=16, metadata={"help": "LoRA rank r."})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / rank)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    modules_to_save: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Modules trained in full beside the adapters (peft's modules_to_save), e.g. embed_tokens. "
            "Real runs leave it empty; a random-start tiny model needs trainable embeddings to tell items apart."
        },
    )

    def __post_init__(self) -> None:
        _require(len(self.target_modules) >= 1, "lora.target_modules", "list at least one module name")
        _require(self.rank >= 1, "lora.rank", f"must be at least 1, got {self.rank}")
        _require(self.alpha >= 1, "lora.alpha", f"must be at least 1, got {self.alpha}")
        _require(0.0 <= self.dropout < 1.0, "lora.dropout", f"must be in [0, 1), got {self.dropout}")
        self.layers = self.layer_list()

    def layer_list(self) -> list[int] | None:
        """The layers as a sorted list; a 'first-last' range is expanded."""
        if self.layers is None:
            return None
        if isinstance(self.layers, str):
            match = _LAYERS_RANGE.match(self.layers)
            _require(match is not None, "lora.layers", f"expected a list or a range like '0-3', got {self.layers!r}")
            first, last = int(match.group(1)), int(match.group(2))
            _require(first <= last, "lora.layers", f"range {self.layers!r} ends before it starts")
            return list(range(first, last + 1))
        _require(
            len(self.layers) >= 1 and all(isinstance(n, int) and n >= 0 for n in self.layers),
            "lora.layers",
            f"expected layer numbers of at least 0, got {self.layers!r}",
        )
        return sorted(set(self.layers))


@dataclass
class TrainingSettings:
    epochs: float = field(default=3.0, metadata={"help": "Passes over the training data."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimiser steps (-1: use epochs)."})
    batch_size: int = field(default=8, metadata={"help": "Examples per device per step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Steps whose gradients are summed."})
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (linear decay)."})
    warmup_ratio: float = field(default=0.0, metadata={"help": "Share of steps spent warming up."})
    max_length: int = field(default=1024, metadata={"help": "Longest prompt + answer in tokens; longer is cut."})
    save_steps: int = field(default=50, metadata={"help": "Save a resumable checkpoint every this many steps."})
    logging_steps: int = field(default=10, metadata={"help": "Log loss and learning rate every this many steps."})
    eval_steps: int | None = field(default=None, metadata={"help": "Evaluate the loss every N steps (None: never)."})
    save_total_limit: int = field(default=2, metadata={"help": "Keep only the newest N checkpoints."})
    bf16: bool = field(default=False, metadata={"help": "Train in bfloat16 (GPUs that support it)."})
    gradient_checkpointing: bool = field(
        default=True,
        metadata={"help": "Recompute activations in the backward pass: less memory, slower. Off for tiny models."},
    )
    quantize_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: load the frozen base in 4 bits (bitsandbytes; CUDA only)."}
    )

    def check(self, section: str) -> None:
        _require(self.epochs > 0, f"{section}.epochs", f"must be above 0, got {self.epochs}")
        _require(
            self.max_steps == -1 or self.max_steps >= 1,
            f"{section}.max_steps",
            f"must be -1 or >= 1, got {self.max_steps}",
        )
        _require(self.batch_size >= 1, f"{section}.batch_size", f"must be at least 1, got {self.batch_size}")
        _require(
            self.gradient_accumulation_steps >= 1,
            f"{section}.gradient_accumulation_steps",
            f"must be at least 1, got {self.gradient_accumulation_steps}",
        )
        _require(0 < self.learning_rate < 1, f"{section}.learning_rate", f"must be in (0, 1), got {self.learning_rate}")
        _require(0 <= self.warmup_ratio < 1, f"{section}.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        _require(self.max_length >= 8, f"{section}.max_length", f"must be at least 8 tokens, got {self.max_length}")
        _require(self.save_steps >= 1, f"{section}.save_steps", f"must be at least 1, got {self.save_steps}")
        _require(self.logging_steps >= 1, f"{section}.logging_steps", f"must be at least 1, got {self.logging_steps}")
        _require(
            self.eval_steps is None or self.eval_steps >= 1,
            f"{section}.eval_steps",
            f"must be at least 1 or null, got {self.eval_steps}",
        )
        _require(
            self.save_total_limit >= 1,
            f"{section}.save_total_limit",
            f"must be at least 1, got {self.save_total_limit}",
        )


@dataclass
class TeacherConfig:
    model: str = field(metadata={"help": "Hub id or local folder of the teacher (the model to fine-tune first)."})
    finetune: bool = field(default=True, metadata={"help": "LoRA-fine-tune the teacher on the training data first."})
    server_url: str | None = field(
        default=None,
        metadata={
            "help": "Sequence-level: base URL of an OpenAI-compatible server (TGI, vLLM) serving the fine-tuned "
            "teacher. Unset: the teacher writes in-process."
        },
    )
    server_model: str | None = field(default=None, metadata={"help": "Model name to ask the server for."})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "The teacher's LoRA adapter."})
    training: TrainingSettings = field(default_factory=TrainingSettings, metadata={"help": "Teacher fine-tuning."})

    def __post_init__(self) -> None:
        _require(bool(self.model), "teacher.model", "must name a model folder or hub id")
        _require(
            not (self.server_url and self.finetune),
            "teacher.server_url",
            "a served teacher is already fine-tuned: set teacher.finetune to false, or drop server_url",
        )
        self.training.check("teacher.training")


@dataclass
class StudentConfig:
    model: str = field(metadata={"help": "Hub id or local folder of the student."})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "The student's LoRA adapter."})
    training: TrainingSettings = field(default_factory=TrainingSettings, metadata={"help": "Student distillation."})

    def __post_init__(self) -> None:
        _require(bool(self.model), "student.model", "must name a model folder or hub id")
        self.training.check("student.training")


@dataclass
class GenerationSettings:
    max_new_tokens: int = field(default=512, metadata={"help": "Longest teacher answer, in tokens."})
    temperature: float = field(default=0.0, metadata={"help": "Teacher sampling temperature (0: greedy)."})
    keep_contradicting: bool = field(
        default=False, metadata={"help": "Keep teacher answers that contradict the gold label (normally dropped)."}
    )
    concurrency: int = field(
        default=8,
        metadata={
            "help": "Teacher requests in flight at once: a served teacher (TGI, vLLM) batches them, and so does "
            "the embedded engine."
        },
    )

    def __post_init__(self) -> None:
        _require(
            self.max_new_tokens >= 1, "generation.max_new_tokens", f"must be at least 1, got {self.max_new_tokens}"
        )
        _require(self.concurrency >= 1, "generation.concurrency", f"must be at least 1, got {self.concurrency}")
        _require(0 <= self.temperature <= 2, "generation.temperature", f"must be in [0, 2], got {self.temperature}")


@dataclass
class LogitSettings:
    beta: float = field(
        default=0.5, metadata={"help": "Generalized JSD: 0 = forward KL, 1 = reverse KL, between = JSD."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of both distributions."})
    lmbda: float = field(default=0.0, metadata={"help": "Share of steps trained on the student's own samples."})
    max_new_tokens: int = field(default=64, metadata={"help": "Length of on-policy student samples."})

    def __post_init__(self) -> None:
        _require(0 <= self.beta <= 1, "logit.beta", f"must be in [0, 1], got {self.beta}")
        _require(self.temperature > 0, "logit.temperature", f"must be above 0, got {self.temperature}")
        _require(0 <= self.lmbda <= 1, "logit.lmbda", f"must be in [0, 1], got {self.lmbda}")
        _require(self.max_new_tokens >= 1, "logit.max_new_tokens", f"must be at least 1, got {self.max_new_tokens}")


@dataclass
class EvaluationSettings:
    max_new_tokens: int = field(default=512, metadata={"help": "Longest answer read when scoring a model."})
    batch_size: int = field(default=16, metadata={"help": "Prompts generated at once when scoring."})
    transfer_limit: int | None = field(default=None, metadata={"help": "Score at most this many transfer items."})
    validation_limit: int | None = field(default=None, metadata={"help": "Score at most this many held-out items."})

    def __post_init__(self) -> None:
        _require(
            self.max_new_tokens >= 1, "evaluation.max_new_tokens", f"must be at least 1, got {self.max_new_tokens}"
        )
        _require(self.batch_size >= 1, "evaluation.batch_size", f"must be at least 1, got {self.batch_size}")
        for name in ("transfer_limit", "validation_limit"):
            value = getattr(self, name)
            _require(value is None or value >= 1, f"evaluation.{name}", f"must be at least 1 or null, got {value}")


@dataclass
class DistillConfig:
    name: str = field(metadata={"help": "Name of the run, as listed in the admin tab."})
    output_dir: str = field(metadata={"help": "Folder for checkpoints, progress, logs, merged models and metrics."})
    teacher: TeacherConfig = field(metadata={"help": "The teacher and its fine-tuning."})
    student: StudentConfig = field(metadata={"help": "The student and its distillation."})
    data: DataConfig = field(metadata={"help": "The training data."})
    method: str = field(
        default="sequence",
        metadata={"help": "sequence: the student learns the teacher's written answers; logit: it matches its logits."},
    )
    generation: GenerationSettings = field(default_factory=GenerationSettings, metadata={"help": "Teacher writing."})
    logit: LogitSettings = field(default_factory=LogitSettings, metadata={"help": "Logit-level distillation."})
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings, metadata={"help": "Final scoring."})
    seed: int = field(default=0, metadata={"help": "Seed for training."})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (None: torch's default)."})
    database_url: str | None = field(
        default=None, metadata={"help": "Store the run here (SQLAlchemy URL); None: MEDLITE_DATABASE_URL's default."}
    )
    store_run: bool = field(default=True, metadata={"help": "Record the run and its metrics in the database."})

    def __post_init__(self) -> None:
        _require(bool(self.name.strip()), "name", "must not be empty")
        _require(bool(self.output_dir), "output_dir", "must name a folder")
        _require(self.method in METHODS, "method", f"must be one of {', '.join(METHODS)}, got {self.method!r}")
        _require(self.threads is None or self.threads >= 1, "threads", f"must be at least 1, got {self.threads}")
        _require(
            not (self.method == "logit" and self.teacher.server_url),
            "teacher.server_url",
            "logit-level distillation needs the teacher's logits in-process; a served teacher works only with "
            "method: sequence",
        )

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, raw: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping, naming unknown or missing keys by their dotted path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of settings, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"{prefix}{unknown[0]}: unknown setting; expected one of {', '.join(known)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        path = f"{where}.{name}" if where else name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, path)
        elif name == "sources":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: expected a list of sources, got {type(value).__name__}")
            values[name] = [_build(DataSource, item, path) for item in value]
        else:
            values[name] = value
    missing = [
        f.name
        for f in known.values()
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"{prefix}{missing[0]}: required setting is missing")
    try:
        return cls(**values)
    except TypeError as exc:  # a value of the wrong type reached a comparison in a check
        raise ConfigError(f"{where or 'config'}: a value has the wrong type ({exc})") from exc


def config_from_dict(raw: Any) -> DistillConfig:
    return _build(DistillConfig, raw, "")


def load_config(path: Path | str) -> DistillConfig:
    """Read and validate a YAML config file; errors name the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
