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

    kind "reasoning" or "answer" carries text; kind "usage" comes last (when known) and carries
    token counts instead.
    """

    kind: Literal["reasoning", "answer", "usage"]
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
