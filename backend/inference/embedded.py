"""The embedded engine: transformers in this process, for laptops, demos and Spaces without a server."""

from __future__ import annotations

import threading
from typing import Any, Iterator

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from backend.inference.errors import InferenceError, InputTooLong, ModelNotLoaded, StreamInterrupted
from backend.inference.reasoning import OPEN_TAG, ThinkSplitter
from backend.inference.types import Delta, GenerationParams


class _StopWhenSet(StoppingCriteria):
    """Ends a generation whose reader has gone away, so the model is free for others."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool, device=input_ids.device)


class EmbeddedEngine:
    """One model object, loaded once on first use and shared by all users' requests.

    `model_path` is a local folder or a hub id; hub downloads follow HF_HUB_OFFLINE as
    transformers always does. A seed makes a reply repeatable only while no other request is
    generating, since torch has one random generator per process.
    """

    name = "embedded"
    url = None

    def __init__(self, model_path: str) -> None:
        self.model = model_path
        self.attn_implementation: str | None = None  # known once loaded
        self._load_lock = threading.Lock()
        self._loaded: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None
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
                model = AutoModelForCausalLM.from_pretrained(self.model, dtype="auto", device_map="auto")
            except Exception as exc:  # a broken, missing or unsupported model: keep the cause for the log
                self._load_error = ModelNotLoaded(f"cannot load the model {self.model!r}: {exc}")
                raise self._load_error from exc
            model.eval()
            self.attn_implementation = model.config._attn_implementation
            self._loaded = (model, tokenizer)
            return self._loaded

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[Delta]:
        model, tokenizer = self.load()
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        inputs = tokenizer(rendered, add_special_tokens=False, return_tensors="pt").to(model.device)
        prompt_tokens = inputs["input_ids"].shape[-1]
        context = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        if prompt_tokens >= context:
            raise InputTooLong(f"the prompt has {prompt_tokens} tokens; {self.model} reads at most {context}")
        max_new_tokens = min(params.max_tokens, context - prompt_tokens)

        # The chat template itself may open the reasoning block (DeepSeek-R1's does).
        splitter = ThinkSplitter(starts_in_reasoning=rendered.rstrip().endswith(OPEN_TAG))
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        reader_gone = threading.Event()
        outcome: dict[str, Any] = {}
        sampling: dict[str, Any] = {"do_sample": params.temperature > 0}
        if params.temperature > 0:
            sampling.update(temperature=params.temperature, top_p=params.top_p)

        def generate() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                outcome["output"] = model.generate(
                    **inputs,
                    **sampling,
                    max_new_tokens=max_new_tokens,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_StopWhenSet(reader_gone)]),
                )
            except Exception as exc:  # handed to the reading thread, which raises it for the caller
                outcome["error"] = exc
                streamer.end()

        worker = threading.Thread(target=generate, name="medlite-generate", daemon=True)
        worker.start()
        started = False
        try:
            for text in streamer:
                for delta in splitter.feed(text):
                    started = True
                    yield delta
            worker.join()
        finally:
            reader_gone.set()
        if "error" in outcome:
            detail = f"generation with {self.model} failed: {outcome['error']}"
            raise StreamInterrupted(detail) if started else InferenceError(detail)
        completion_tokens = outcome["output"].shape[-1] - prompt_tokens
        yield from splitter.flush(truncated=completion_tokens >= max_new_tokens)
        yield Delta("usage", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def status(self) -> str:
        if self._loaded is not None:
            model, _ = self._loaded
            return f"Running {self.model} inside MedLite on {model.device} ({self.attn_implementation} attention)."
        if self._load_error is not None:
            return f"Could not load {self.model}: {self._load_error}. {ModelNotLoaded.user_message}"
        return f"{self.model} will be loaded inside MedLite for the first question."
