"""The embedded engine: transformers in this process, for laptops, demos and Spaces without a server."""

from __future__ import annotations

import importlib.util
import threading
from typing import Iterator

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TextStreamer,
)

from backend.inference.batching import DEFAULT_MAX_BATCH_SIZE, BatchScheduler
from backend.inference.errors import InferenceError, InputTooLong, ModelNotLoaded, StreamInterrupted
from backend.inference.reasoning import OPEN_TAG, ThinkSplitter
from backend.inference.types import Delta, GenerationParams


def attention_candidates() -> list[str]:
    """Attention implementations to try, fastest first, for the device the model will load on.

    FlashAttention 2 needs an Ampere or newer NVIDIA GPU (compute capability 8+) and the
    flash_attn package; SDPA is PyTorch's own fused attention; eager always works."""
    candidates = ["sdpa", "eager"]
    if (
        torch.cuda.is_available()
        and torch.cuda.get_device_capability()[0] >= 8
        and importlib.util.find_spec("flash_attn") is not None
    ):
        candidates.insert(0, "flash_attention_2")
    return candidates


class _TextCollector(TextStreamer):
    """Incremental detokenising (whole words, whole CJK characters) for one reply, fed token by token."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__(tokenizer, skip_prompt=False, skip_special_tokens=True)
        self.pieces: list[str] = []

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.pieces.append(text)

    def take(self) -> str:
        text, self.pieces = "".join(self.pieces), []
        return text


class EmbeddedEngine:
    """One model object, loaded once on first use and shared by all users' requests.

    `model_path` is a local folder or a hub id; hub downloads follow HF_HUB_OFFLINE as
    transformers always does. Concurrent requests are batched step by step (see
    `backend.inference.batching`), up to `max_batch_size` at a time. Each request samples from
    its own random generator, so a seed repeats a reply even while others are generating.
    """

    name = "embedded"
    url = None

    def __init__(self, model_path: str, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.model = model_path
        self.max_batch_size = max_batch_size
        self.attn_implementation: str | None = None  # known once loaded
        self._load_lock = threading.Lock()
        self._loaded: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None
        self._scheduler: BatchScheduler | None = None
        self._load_error: ModelNotLoaded | None = None

    def check(self) -> None:
        """Cheaply confirm that the model can be found (its config loads); raises ModelNotLoaded."""
        try:
            AutoConfig.from_pretrained(self.model)
        except Exception as exc:  # any failure here means the model cannot be used; the cause is kept
            raise ModelNotLoaded(f"cannot find the model {self.model!r}: {exc}") from exc

    def load(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Load the model and tokenizer once (thread-safe); later calls return the same objects."""
        with self._load_lock:
            if self._loaded is not None:
                return self._loaded
            if self._load_error is not None:
                raise self._load_error
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model)
                model = self._load_model()
            except Exception as exc:  # a broken, missing or unsupported model: keep the cause for the log
                self._load_error = ModelNotLoaded(f"cannot load the model {self.model!r}: {exc}")
                raise self._load_error from exc
            self.attn_implementation = model.config._attn_implementation
            self._scheduler = BatchScheduler(
                model,
                eos_token_ids=_eos_token_ids(model, tokenizer),
                pad_token_id=tokenizer.pad_token_id,
                max_batch_size=self.max_batch_size,
            )
            self._loaded = (model, tokenizer)
            return self._loaded

    def _load_model(self) -> PreTrainedModel:
        """The model with the fastest attention that loads and runs one forward pass here.

        A later candidate is tried when one fails (a kernel missing for this GPU, a model class
        without SDPA); the error of the last candidate is raised when none works."""
        candidates = attention_candidates()
        for attention in candidates:
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    self.model, dtype="auto", device_map="auto", attn_implementation=attention
                )
                model.eval()
                with torch.inference_mode():
                    model(input_ids=torch.zeros((1, 2), dtype=torch.long, device=model.device))
                return model
            except Exception:  # this attention does not work here; the next candidate may
                if attention == candidates[-1]:
                    raise
        raise AssertionError("attention_candidates() is never empty")

    def close(self) -> None:
        """Stop the generation worker and let the model go (a pipeline frees it before training the next one)."""
        with self._load_lock:
            if self._scheduler is not None:
                self._scheduler.close()
            self._scheduler = None
            self._loaded = None

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[Delta]:
        model, tokenizer = self.load()
        assert self._scheduler is not None  # set by load()
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        prompt_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        prompt_tokens = len(prompt_ids)
        context = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        if prompt_tokens >= context:
            raise InputTooLong(f"the prompt has {prompt_tokens} tokens; {self.model} reads at most {context}")
        max_new_tokens = min(params.max_tokens, context - prompt_tokens)

        # The chat template itself may open the reasoning block (DeepSeek-R1's does).
        splitter = ThinkSplitter(starts_in_reasoning=rendered.rstrip().endswith(OPEN_TAG))
        text = _TextCollector(tokenizer)
        request = self._scheduler.submit(prompt_ids, max_new_tokens, params)
        completion_tokens = 0
        started = False
        try:
            for token in request.tokens():
                completion_tokens += 1
                text.put(torch.tensor([token]))
                for delta in splitter.feed(text.take()):
                    started = True
                    yield delta
        except InferenceError as exc:
            detail = f"generation with {self.model} failed: {exc}"
            raise (StreamInterrupted(detail) if started else InferenceError(detail)) from exc
        finally:
            request.cancel()  # frees the batch slot when the reader stopped early; harmless after the end
        text.end()
        yield from splitter.feed(text.take())
        yield from splitter.flush(truncated=request.finish_reason == "length")
        yield Delta(
            "usage",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=request.finish_reason,
        )

    def status(self) -> str:
        if self._loaded is not None:
            model, _ = self._loaded
            return f"Running {self.model} inside MedLite on {model.device} ({self.attn_implementation} attention)."
        if self._load_error is not None:
            return f"Could not load {self.model}: {self._load_error}. {ModelNotLoaded.user_message}"
        return f"{self.model} will be loaded inside MedLite for the first question."


def _eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token that ends a reply: the generation config's (one id or a list) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return [token for token in {*ids, tokenizer.eos_token_id} if token is not None]
