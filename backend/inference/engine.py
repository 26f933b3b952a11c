"""What every inference engine offers, and the choice of engine from the settings."""

from __future__ import annotations

from typing import Iterator, Protocol

from backend.inference.errors import ModelNotLoaded
from backend.inference.remote import RemoteEngine
from backend.inference.types import Delta, GenerationParams
from backend.settings import Settings


class Engine(Protocol):
    """A source of streamed replies, shared by every user of the app."""

    name: str  # "remote" | "embedded" | "unavailable"
    model: str
    url: str | None

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[Delta]:
        """Reasoning and answer deltas as they come, then one usage delta when known.

        Raises a subclass of `InferenceError`; after the first delta only `StreamInterrupted`.
        """
        ...

    def status(self) -> str:
        """One plain sentence for the page: what the engine is connected to, or why it is not."""
        ...

    def close(self) -> None:
        """Let go of what the engine holds (a loaded model, open connections); a batch job's last call."""
        ...


HOW_TO_CONFIGURE = (
    "Set MEDLITE_MODEL to a local model folder (or a hub id when online), or MEDLITE_BACKEND_URL "
    "to an OpenAI-compatible server, then restart MedLite."
)


class UnavailableEngine:
    """Stands in when no model can be used, so the app still starts and says why."""

    name = "unavailable"
    url = None

    def __init__(self, reason: str, *, model: str = "") -> None:
        self.reason = reason
        self.model = model

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[Delta]:
        # A generator like the other engines' streams, so the error surfaces where callers iterate.
        raise ModelNotLoaded(self.reason)
        yield  # unreachable; its presence makes this function a generator

    def status(self) -> str:
        return f"No model is available: {self.reason}. {HOW_TO_CONFIGURE}"

    def close(self) -> None:
        pass  # holds nothing


def create_engine(settings: Settings, *, remote_retries: int = 3) -> Engine:
    """The remote engine when a server URL is set, else the embedded one; never raises.

    `remote_retries` bounds the retries before a stream starts; a caller that retries whole
    requests itself (the evaluation runner) passes 0.

    With a server, MEDLITE_MODEL (when set) names the model in requests: vLLM and a pinned
    `transformers serve` insist on their own name, and `transformers serve` does not list it.
    Unset, the server's first listed model is used. The embedded engine only checks here that its
    model can be found; the weights load on first use.
    """
    if settings.backend_url:
        return RemoteEngine(
            settings.backend_url,
            model=settings.model,
            api_key=settings.api_key,
            timeout_s=settings.request_timeout_s,
            max_retries=remote_retries,
        )
    if not settings.model:
        return UnavailableEngine("neither MEDLITE_MODEL nor MEDLITE_BACKEND_URL is set")
    # Imported here so that a remote-only deployment never pays for importing torch.
    from backend.inference.embedded import EmbeddedEngine

    engine = EmbeddedEngine(settings.model)
    try:
        engine.check()
    except ModelNotLoaded as exc:
        return UnavailableEngine(str(exc), model=settings.model)
    return engine
