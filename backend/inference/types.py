"""Plain data passed between the inference engines and their callers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings; the defaults are DeepSeek-R1's advice (temperature 0.6, top_p 0.95)."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be between 0 and 2, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Delta:
    """One piece of a streamed reply.

    kind "reasoning" or "answer" carries text; "reasoning_is_answer" says that everything streamed
    as reasoning so far was in fact the answer (a model that never thought; see ThinkSplitter);
    "usage" comes last and carries token counts (when known) and why the reply ended instead:
    finish_reason "length" means the model hit its token limit and the answer is cut short.
    """

    kind: Literal["reasoning", "answer", "reasoning_is_answer", "usage"]
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


@dataclass
class Reply:
    """A reply put together from its deltas: the one way callers accumulate a stream."""

    reasoning: str = ""
    answer: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None

    def add(self, delta: Delta) -> bool:
        """Take one delta; True when the visible text changed."""
        if delta.kind == "usage":
            self.prompt_tokens, self.completion_tokens = delta.prompt_tokens, delta.completion_tokens
            self.finish_reason = delta.finish_reason
            return False
        if delta.kind == "reasoning_is_answer":
            self.answer, self.reasoning = self.reasoning + self.answer, ""
            return True
        if not delta.text:
            return False
        if delta.kind == "reasoning":
            self.reasoning += delta.text
        else:
            self.answer += delta.text
        return True

    @property
    def has_text(self) -> bool:
        return bool(self.reasoning or self.answer)

    @property
    def truncated(self) -> bool:
        """The model stopped at its token limit, so the reply is cut short."""
        return self.finish_reason == "length"
