"""The one family of inference failures; each carries a sentence fit to show a clinician."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class. `user_message` is plain language; `str(exc)` keeps the technical detail."""

    user_message = "The model could not answer. Please try again."
    retryable = False

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class ServerBusy(InferenceError):
    user_message = "The model server is busy with other requests. Please try again in a moment."
    retryable = True


class InputTooLong(InferenceError):
    user_message = "The question is too long for the model. Please shorten the text and try again."


class ServerUnavailable(InferenceError):
    user_message = "The model server is not reachable or is still loading. Please try again shortly."
    retryable = True


class InferenceTimeout(InferenceError):
    user_message = "The model took too long to answer. Please try again."
    retryable = True


class StreamInterrupted(InferenceError):
    """The stream broke after it had started: the partial text is kept and marked incomplete."""

    user_message = "The answer was cut off before it finished; what arrived is shown and marked incomplete."


class ModelNotLoaded(InferenceError):
    user_message = (
        "No model is loaded. Set MEDLITE_MODEL to a local model folder (or a hub id when online), "
        "or set MEDLITE_BACKEND_URL to an OpenAI-compatible server such as TGI, then restart MedLite."
    )
