"""Split a streamed reply into the model's reasoning and its answer.

DeepSeek-R1 writes `reasoning</think>answer`; its chat template has already opened `<think>`, so
the reply usually starts inside the reasoning with no opening tag. Servers without a reasoning
parser pass the tags through as plain text, so the split has to happen here, chunk by chunk.
Hand-written because no maintained library parses think tags from a stream of arbitrary chunks.
"""

from __future__ import annotations

from backend.inference.types import Delta

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


def _partial_tag_length(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could be the start of `tag` (to hold back)."""
    for length in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0


def _merge(deltas: list[Delta]) -> list[Delta]:
    merged: list[Delta] = []
    for delta in deltas:
        if not delta.text and delta.kind != "reasoning_is_answer":
            continue
        if merged and merged[-1].kind == delta.kind:
            merged[-1] = Delta(delta.kind, merged[-1].text + delta.text)
        else:
            merged.append(delta)
    return merged


class ThinkSplitter:
    """Streaming parser: `feed` chunks as they come, then `flush` once at the end.

    Rules:
    - `<think>` is honoured only at the very start (after whitespace); `</think>` only once, to
      end the reasoning. Any later tag is ordinary text.
    - Whitespace is trimmed at both ends of the reasoning and at the start of the answer.
    - Only what might be the start of a tag (or trailing whitespace in the reasoning) is held
      back between chunks; everything else is emitted at once.
    - A reply that started in reasoning only by assumption (no `<think>` seen) and ended without
      `</think>` came from a model that does not think: `flush` then sends a `reasoning_is_answer`
      delta, so the text is never hidden as reasoning (`Reply` moves it). When the stream stopped at the token limit (`truncated=True`) the text stays
      reasoning only: it is thinking cut short, not an answer.
    """

    def __init__(self, *, starts_in_reasoning: bool = True) -> None:
        self._in_reasoning = starts_in_reasoning
        self._reasoning_assumed = starts_in_reasoning
        self._at_section_start = True
        self._may_open = True
        self._saw_open = False
        self._saw_close = False
        self._held = ""
        self._emitted_reasoning = False

    def feed(self, text: str) -> list[Delta]:
        buffer = self._held + text
        self._held = ""
        out: list[Delta] = []
        while buffer:
            if self._at_section_start:
                buffer = buffer.lstrip()
                if not buffer:
                    break
                if self._may_open:
                    if buffer.startswith(OPEN_TAG):
                        buffer = buffer[len(OPEN_TAG) :]
                        self._may_open = False
                        self._saw_open = True
                        self._in_reasoning = True
                        continue
                    if OPEN_TAG.startswith(buffer):
                        self._held = buffer
                        break
                    self._may_open = False
            if not self._in_reasoning:
                out.append(Delta("answer", buffer))
                self._at_section_start = False
                break
            buffer = self._feed_reasoning(buffer, out)
        return _merge(out)

    def _feed_reasoning(self, buffer: str, out: list[Delta]) -> str:
        """Emit reasoning from `buffer`; returns what follows `</think>`, or "" if it did not come."""
        close_at = buffer.find(CLOSE_TAG)
        if close_at >= 0:
            self._emit_reasoning(buffer[:close_at].rstrip(), out)
            self._saw_close = True
            self._in_reasoning = False
            self._at_section_start = True
            return buffer[close_at + len(CLOSE_TAG) :]
        emit = buffer[: len(buffer) - _partial_tag_length(buffer, CLOSE_TAG)]
        text = emit.rstrip()
        self._held = buffer[len(text) :]
        self._emit_reasoning(text, out)
        return ""

    def _emit_reasoning(self, text: str, out: list[Delta]) -> None:
        if text:
            self._at_section_start = False
            self._emitted_reasoning = True
            out.append(Delta("reasoning", text))

    def flush(self, *, truncated: bool = False) -> list[Delta]:
        """Release what was held back; `truncated` means the model hit its token limit."""
        held, self._held = self._held, ""
        out: list[Delta] = []
        if self._in_reasoning:
            self._emit_reasoning(held.rstrip(), out)
            never_thought = self._reasoning_assumed and not self._saw_open and not self._saw_close
            if never_thought and not truncated and self._emitted_reasoning:
                out.append(Delta("reasoning_is_answer"))
        else:
            out.append(Delta("answer", held))
        return _merge(out)
