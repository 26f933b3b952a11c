"""One consultation, end to end: validate and render the template, raise red flags from the input,
stream the model's reply with its reasoning kept apart, and store what happened.

The UI and the `/consult` API both call `ConsultationService.stream`, so the clinician's page and
automation see the same behaviour and the same stored rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import SQLAlchemyError

from backend.inference.engine import Engine
from backend.inference.errors import InferenceError, StreamInterrupted
from backend.inference.types import GenerationParams, Reply
from backend.red_flags import detect_red_flags
from storage.repository import Store
from templates import (
    LANGUAGES,
    TemplateValidationError,
    UnknownTemplate,
    get_template,
    render_prompt,
    validate_fields,
)

log = logging.getLogger(__name__)

NOT_SAVED = {
    "en": "This consultation could not be saved: the database is unavailable.",
    "zh": "本次咨询未能保存：数据库不可用。",
}
CUT_AT_LIMIT = {
    "en": "The answer reached the length limit and was cut off; it is marked incomplete. Ask a narrower "
    "question, or ask your administrator to raise the limit (MEDLITE_MAX_NEW_TOKENS).",
    "zh": "回答达到长度上限而被截断，已标记为不完整。请缩小问题范围，或请管理员调高长度上限（MEDLITE_MAX_NEW_TOKENS）。",
}


@dataclass(frozen=True)
class ConsultUpdate:
    """The state of a consultation as it streams; the last one is the final result."""

    answer: str = ""
    reasoning: str = ""
    red_flags: tuple[str, ...] = ()
    consultation_id: int | None = None
    error: str | None = None
    status: str = "streaming"
    prompt: str = ""
    done: bool = False

    def to_api(self) -> dict:
        """The `/consult` contract of DESIGN.md: exactly these keys."""
        return {
            "answer": self.answer,
            "reasoning": self.reasoning,
            "red_flags": list(self.red_flags),
            "consultation_id": self.consultation_id,
            "error": self.error,
        }


@dataclass
class _Timing:
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None

    def mark_token(self) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


class ConsultationService:
    """Turns a clinician's form into a streamed, stored consultation."""

    def __init__(self, engine: Engine, store: Store, params: GenerationParams) -> None:
        self.engine = engine
        self.store = store
        self.params = params

    def preview(self, question_type: str, language: str, fields: object) -> ConsultUpdate:
        """Render without calling the model: the prompt preview, or the validation message."""
        try:
            template = get_template(question_type, language)
            prompt = render_prompt(template, fields)
        except (UnknownTemplate, TemplateValidationError) as exc:
            return ConsultUpdate(error=str(exc), status="error", done=True)
        return ConsultUpdate(prompt=prompt, red_flags=self._red_flags(question_type, fields, language), done=True)

    def stream(
        self, *, user_name: str, question_type: str, language: str, fields: object
    ) -> Iterator[ConsultUpdate]:
        """Yield growing snapshots of the consultation; the last has `done=True`."""
        lang = language if language in LANGUAGES else "en"
        red_flags = self._red_flags(question_type, fields, lang)
        try:
            template = get_template(question_type, language)
            values = validate_fields(template, fields)
            prompt = render_prompt(template, values)
        except (UnknownTemplate, TemplateValidationError) as exc:
            yield ConsultUpdate(red_flags=red_flags, error=str(exc), status="error", done=True)
            return

        consultation_id, save_error = self._start(
            user_name=user_name,
            question_type=template.question_type,
            language=template.language,
            template_id=template.id,
            template_version=template.version,
            fields=values,
            rendered_prompt=prompt,
            red_flags=list(red_flags),
            model=self.engine.model,
            backend=self.engine.name,
            backend_url=self.engine.url,
            generation_params=self.params.as_dict(),
        )
        state = ConsultUpdate(
            red_flags=red_flags,
            consultation_id=consultation_id,
            prompt=prompt,
            error=NOT_SAVED[lang] if save_error else None,
        )
        yield state

        timing = _Timing()
        reply = Reply()
        status, error = "complete", None
        try:
            for delta in self.engine.stream(prompt, self.params):
                if reply.add(delta):
                    timing.mark_token()
                    state = replace(state, reasoning=reply.reasoning, answer=reply.answer)
                    yield state
        except StreamInterrupted as exc:
            status, error = "incomplete", exc.message_in(lang)
            log.warning("stream interrupted for consultation %s: %s", consultation_id, exc)
        except InferenceError as exc:
            status = "incomplete" if reply.has_text else "error"
            error = exc.message_in(lang)
            log.warning("inference failed for consultation %s: %s", consultation_id, exc)
        if status == "complete" and reply.truncated:
            status, error = "incomplete", CUT_AT_LIMIT[lang]

        if consultation_id is not None:
            self._finish(
                consultation_id,
                reasoning=reply.reasoning,
                answer=reply.answer,
                status=status,
                error=error,
                time_to_first_token_s=timing.ttft,
                latency_s=timing.elapsed,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                model=self.engine.model or None,
            )
        messages = [m for m in (error, state.error) if m]
        yield replace(state, status=status, error=" ".join(messages) or None, done=True)

    def _red_flags(self, question_type: str, fields: object, language: str) -> tuple[str, ...]:
        """Rules on the clinician's input; an exam question describes no patient, so it raises none."""
        if question_type == "exam" or not isinstance(fields, Mapping):
            return ()
        return tuple(flag.message for flag in detect_red_flags(fields, language))

    def _start(self, **row: object) -> tuple[int | None, bool]:
        """Store the consultation's start; a database failure must not stop the answer."""
        try:
            return self.store.start_consultation(**row), False
        except SQLAlchemyError:
            log.exception("could not store the start of a consultation")
            return None, True

    def _finish(self, consultation_id: int, **result: object) -> None:
        try:
            self.store.finish_consultation(consultation_id, **result)
        except SQLAlchemyError:
            log.exception("could not store the result of consultation %s", consultation_id)

