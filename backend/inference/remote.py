"""The remote engine: any OpenAI-compatible chat server (TGI, vLLM, SGLang, llama.cpp, `transformers serve`).

The `openai` client is used rather than huggingface_hub's InferenceClient because the latter
refuses every request under HF_HUB_OFFLINE=1, even to a server on the local network.
"""

from __future__ import annotations

import random
import re
import threading
import time
from contextlib import closing
from typing import Iterator

import openai
from openai.types.chat import ChatCompletionChunk

from backend.inference.errors import (
    InferenceError,
    InferenceTimeout,
    InputTooLong,
    ServerBusy,
    ServerUnavailable,
    StreamInterrupted,
)
from backend.inference.reasoning import ThinkSplitter
from backend.inference.types import Delta, GenerationParams

# TGI ignores the model name and lists its one model under this id.
FALLBACK_MODEL = "tgi"
STATUS_TIMEOUT_S = 5.0
RETRYABLE_STATUS = (429, 502, 503, 504)
# A 400 is "input too long" only when the server says so (TGI and vLLM name tokens or length);
# other 400s, such as an unknown model name, must not tell the clinician to shorten the text.
_TOO_LONG = re.compile(r"token|length|too long|too large|context", re.IGNORECASE)


def _map_error(exc: openai.OpenAIError, url: str) -> InferenceError:
    """The InferenceError for a failure before the reply started."""
    if isinstance(exc, openai.APITimeoutError):
        return InferenceTimeout(f"No reply from {url} in time")
    if isinstance(exc, openai.APIConnectionError):
        return ServerUnavailable(f"Cannot connect to {url}: {exc.__cause__ or exc}")
    if isinstance(exc, openai.APIStatusError):
        detail = f"{url} answered HTTP {exc.status_code}: {exc.message}"
        if exc.status_code == 429:
            return ServerBusy(detail)
        if exc.status_code in (413, 422) or (exc.status_code == 400 and _TOO_LONG.search(str(exc.body or exc.message))):
            return InputTooLong(detail)
        if exc.status_code == 400:
            return InferenceError(
                detail,
                user_message="The model server refused the request. Ask your administrator to check "
                "MedLite's model settings (MEDLITE_MODEL names the model on servers that need it).",
                user_message_zh="模型服务器拒绝了请求。请管理员检查 MedLite 的模型设置（MEDLITE_MODEL）。",
            )
        if exc.status_code in (502, 503, 504):
            return ServerUnavailable(detail)
        if exc.status_code in (401, 403):
            return InferenceError(
                detail,
                user_message="The model server refused MedLite's key. Check MEDLITE_API_KEY.",
                user_message_zh="模型服务器拒绝了 MedLite 的密钥，请检查 MEDLITE_API_KEY。",
            )
        return InferenceError(detail)
    body = getattr(exc, "body", None)
    return InferenceError(f"{url} reported an error: {body or exc}")


class _ReplyReader:
    """Turns chat-completion chunks into deltas, remembering how the reply ended."""

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self._server_splits = False  # the server sends reasoning in its own field
        self._splitter: ThinkSplitter | None = None
        self._reasoning_started = False
        self._usage: tuple[int, int] | None = None

    def read(self, chunk: ChatCompletionChunk) -> list[Delta]:
        if chunk.usage is not None:
            self._usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        out: list[Delta] = []
        for choice in chunk.choices:
            # vLLM and SGLang name the field `reasoning_content`, newer servers `reasoning`;
            # both arrive as extra fields on the delta.
            reasoning = getattr(choice.delta, "reasoning_content", None) or getattr(choice.delta, "reasoning", None)
            if isinstance(reasoning, str) and reasoning:
                self._server_splits = True
                if not self._reasoning_started:
                    reasoning = reasoning.lstrip()
                    self._reasoning_started = bool(reasoning)
                if reasoning:
                    out.append(Delta("reasoning", reasoning))
            if choice.delta.content:
                if self._splitter is None:
                    self._splitter = ThinkSplitter(starts_in_reasoning=not self._server_splits)
                out.extend(self._splitter.feed(choice.delta.content))
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        return out

    def finish(self) -> list[Delta]:
        out = self._splitter.flush(truncated=self.finish_reason == "length") if self._splitter else []
        prompt_tokens, completion_tokens = self._usage or (None, None)
        out.append(
            Delta(
                "usage",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=self.finish_reason,
            )
        )
        return out


class RemoteEngine:
    """Streams from a server; retries only before the first delta, so nothing is ever repeated."""

    name = "remote"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120,
        max_retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.url = base_url.rstrip("/")
        self.model = model or ""  # asked from the server on first use when not given
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._model_lock = threading.Lock()
        # The client's own retries are off so that retrying follows the rule above. A placeholder
        # key keeps the client from sending an OPENAI_API_KEY from the environment to this server.
        self._client = openai.OpenAI(
            base_url=self.url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0
        )

    def _resolve_model(self) -> str:
        """The model to name in requests: the given one, else the server's first listed one."""
        with self._model_lock:
            if not self.model:
                try:
                    listed = self._client.models.list().data
                except openai.APIStatusError as exc:
                    if exc.status_code in RETRYABLE_STATUS:
                        raise
                    listed = []  # no usable list; `transformers serve`, for one, lists only its hub cache
                self.model = listed[0].id if listed else FALLBACK_MODEL
            return self.model

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[Delta]:
        attempt = 0
        while True:
            delivered = False
            try:
                with closing(self._stream_once(prompt, params)) as deltas:
                    for delta in deltas:
                        delivered = True
                        yield delta
                return
            except InferenceError as exc:
                if delivered or not exc.retryable or attempt >= self._max_retries:
                    raise
            # Exponential back-off with jitter, so that many clients do not retry in step.
            time.sleep(self._backoff_s * 2**attempt * random.uniform(0.5, 1.5))
            attempt += 1

    def _stream_once(self, prompt: str, params: GenerationParams) -> Iterator[Delta]:
        reader = _ReplyReader()
        started = False
        try:
            request: dict = {
                "model": self._resolve_model(),
                "messages": [{"role": "user", "content": prompt}],
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": params.temperature,
                "top_p": params.top_p,
                "max_tokens": params.max_tokens,
            }
            if params.seed is not None:
                request["seed"] = params.seed
            with self._client.chat.completions.create(**request) as chunks:
                for chunk in chunks:
                    for delta in reader.read(chunk):
                        started = True
                        yield delta
        except openai.OpenAIError as exc:
            if reader.finish_reason is None:
                if started:
                    raise StreamInterrupted(f"The stream from {self.url} broke: {exc}") from exc
                raise _map_error(exc, self.url) from exc
            # The reply had finished; a failure while closing the connection loses nothing.
        if reader.finish_reason is None:
            # Every compatible server ends a reply with a finish reason; a stream closed without
            # one was cut off.
            detail = f"{self.url} closed the stream before the reply finished"
            raise StreamInterrupted(detail) if started else ServerUnavailable(detail)
        yield from reader.finish()

    def close(self) -> None:
        self._client.close()

    def status(self) -> str:
        try:
            listed = self._client.with_options(timeout=STATUS_TIMEOUT_S).models.list().data
        except openai.APIStatusError as exc:
            if exc.status_code in RETRYABLE_STATUS:
                return f"The model server at {self.url} answered HTTP {exc.status_code}: it is busy or still loading."
            listed = []  # it answered, only without a usable model list
        except openai.OpenAIError as exc:
            return f"Cannot reach the model server at {self.url} ({exc.__cause__ or exc})."
        if not self.model and listed:
            with self._model_lock:
                self.model = self.model or listed[0].id
        return f"Connected to {self.url} (model {self.model or FALLBACK_MODEL})."
