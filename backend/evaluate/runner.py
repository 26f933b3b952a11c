"""Run a benchmark through a model: render each item, stream the reply, read the answer, score.

Each item goes through the clinicians' **exam** template in its own language and through the same
inference engine the app uses, so a score measures what clinicians get. Only the answer part of a
reply is read: the engine splits `reasoning</think>answer`, and the reasoning is never mined, so a
reply whose thinking never closed (cut at the token limit, or an opened `<think>` never shut) has
no answer and counts as a parse failure. A reply with no think tags at all is the answer of a model
that does not think, as the engine reports it.

Every item is accounted for: correct, wrong, unreadable (parse failure) or error (the item could not
be rendered, or the request still failed after retries). Accuracy is correct / n over all items.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

from tqdm.auto import tqdm

from backend.evaluate.datasets import DatasetError, EvalItem, item_to_exam_fields
from backend.evaluate.extract import extract_answer
from backend.evaluate.stats import summarize_latencies, wilson_interval
from backend.inference.engine import Engine
from backend.inference.errors import InferenceError, InputTooLong, ModelNotLoaded
from backend.inference.types import GenerationParams, Reply
from templates import TemplateValidationError, get_template, render_prompt

EXAM_QUESTION_TYPE = "exam"
# Failures that a second try cannot fix: the same prompt is as long, the model as absent.
_NOT_WORTH_RETRYING = (InputTooLong, ModelNotLoaded)


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item. `predicted` None with no `error` is a parse failure."""

    id: str
    gold: str
    predicted: str | None
    correct: bool
    raw_answer: str
    subject: str | None
    latency_s: float | None
    completion_tokens: int | None
    error: str | None
    truncated: bool = False  # the model hit its token limit: a parse failure here may need a larger limit

    @property
    def parse_failure(self) -> bool:
        return self.error is None and self.predicted is None


@dataclass(frozen=True)
class EvaluationReport:
    """Scores of one run; `metrics()` is everything but the items."""

    n: int
    correct: int
    wrong: int
    parse_failures: int
    errors: int
    truncated: int  # answers cut at the token limit (counted in the other columns too)
    accuracy: float | None
    wilson_95: tuple[float, float]
    per_subject: dict[str, dict[str, Any]] | None
    latency_s: dict[str, float | int | None]
    completion_tokens: dict[str, float | int | None]
    prompt_tokens_total: int
    wall_time_s: float
    templates: dict[str, str]  # template id -> version, for each language the items used
    generation_params: dict[str, Any]
    concurrency: int
    items: list[ItemResult]

    def metrics(self) -> dict[str, Any]:
        data = self.as_dict()
        del data["items"]
        return data

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["wilson_95"] = list(self.wilson_95)
        return data


def _ask(engine: Engine, prompt: str, params: GenerationParams) -> tuple[Reply, float]:
    """One request streamed to the end, and its latency in seconds; the reasoning is never read."""
    reply = Reply()
    started = time.perf_counter()
    for delta in engine.stream(prompt, params):
        reply.add(delta)
    return reply, time.perf_counter() - started


def _ask_with_retries(
    engine: Engine, prompt: str, params: GenerationParams, retries: int, backoff_s: float
) -> tuple[Reply, float]:
    """Retry any failed request (a broken stream starts over) `retries` times, backing off."""
    attempt = 0
    while True:
        try:
            return _ask(engine, prompt, params)
        except _NOT_WORTH_RETRYING:
            raise
        except InferenceError:
            if attempt >= retries:
                raise
        # Jittered exponential back-off, so that concurrent workers do not retry in step.
        time.sleep(backoff_s * 2**attempt * random.uniform(0.5, 1.5))
        attempt += 1


def _error_result(item: EvalItem, message: str) -> ItemResult:
    return ItemResult(
        id=item.id,
        gold=item.gold,
        predicted=None,
        correct=False,
        raw_answer="",
        subject=item.subject,
        latency_s=None,
        completion_tokens=None,
        error=message,
    )


def _evaluate_item(
    item: EvalItem, engine: Engine, params: GenerationParams, retries: int, backoff_s: float
) -> tuple[ItemResult, int]:
    """The item's result and the prompt tokens it used (0 when unknown)."""
    try:
        template = get_template(EXAM_QUESTION_TYPE, item.language)
        prompt = render_prompt(template, item_to_exam_fields(item))
    except (DatasetError, TemplateValidationError) as exc:
        return _error_result(item, f"cannot render item {item.id}: {exc}"), 0
    try:
        reply, latency_s = _ask_with_retries(engine, prompt, params, retries, backoff_s)
    except InferenceError as exc:
        return _error_result(item, f"{type(exc).__name__}: {exc}"), 0
    predicted = extract_answer(reply.answer, item)
    result = ItemResult(
        id=item.id,
        gold=item.gold,
        predicted=predicted,
        correct=predicted == item.gold,
        raw_answer=reply.answer,
        subject=item.subject,
        latency_s=latency_s,
        completion_tokens=reply.completion_tokens,
        error=None,
        truncated=reply.truncated,
    )
    return result, reply.prompt_tokens or 0


def _per_subject(results: Sequence[ItemResult]) -> dict[str, dict[str, Any]] | None:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for result in results:
        if result.subject is not None:
            counts[result.subject][0] += 1
            counts[result.subject][1] += result.correct
    if not counts:
        return None
    return {
        subject: {"n": n, "correct": correct, "accuracy": correct / n}
        for subject, (n, correct) in sorted(counts.items())
    }


def _token_stats(results: Sequence[ItemResult]) -> dict[str, float | int | None]:
    counts = [r.completion_tokens for r in results if r.completion_tokens is not None]
    return {**summarize_latencies(counts), "total": sum(counts)}


def run_evaluation(
    items: Sequence[EvalItem],
    engine: Engine,
    *,
    concurrency: int,
    params: GenerationParams,
    retries: int = 2,
    progress: bool = True,
    backoff_s: float = 0.5,
) -> EvaluationReport:
    """Evaluate `items` on `engine`, `concurrency` requests at a time, with a progress bar.

    Never raises for a single item: render failures and requests still failing after `retries`
    retries are counted as errors with their message kept. Items keep their input order.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if retries < 0:
        raise ValueError(f"retries must not be negative, got {retries}")
    results: list[ItemResult | None] = [None] * len(items)
    prompt_tokens_total = 0
    started = time.perf_counter()
    with (
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="evaluate") as pool,
        tqdm(total=len(items), desc="evaluating", unit="item", disable=not progress) as bar,
    ):
        futures = {
            pool.submit(_evaluate_item, item, engine, params, retries, backoff_s): index
            for index, item in enumerate(items)
        }
        correct = errors = 0
        for future in as_completed(futures):
            result, prompt_tokens = future.result()
            results[futures[future]] = result
            prompt_tokens_total += prompt_tokens
            correct += result.correct
            errors += result.error is not None
            bar.set_postfix(correct=correct, errors=errors, refresh=False)
            bar.update()
    wall_time_s = time.perf_counter() - started

    done = [result for result in results if result is not None]
    n = len(done)
    n_correct = sum(result.correct for result in done)
    parse_failures = sum(result.parse_failure for result in done)
    n_errors = sum(result.error is not None for result in done)
    languages = sorted({item.language for item in items})
    templates = {t.id: t.version for t in (get_template(EXAM_QUESTION_TYPE, lang) for lang in languages)}
    return EvaluationReport(
        n=n,
        correct=n_correct,
        wrong=n - n_correct - parse_failures - n_errors,
        parse_failures=parse_failures,
        errors=n_errors,
        truncated=sum(result.truncated for result in done),
        accuracy=n_correct / n if n else None,
        wilson_95=wilson_interval(n_correct, n),
        per_subject=_per_subject(done),
        latency_s=summarize_latencies([r.latency_s for r in done if r.latency_s is not None]),
        completion_tokens=_token_stats(done),
        prompt_tokens_total=prompt_tokens_total,
        wall_time_s=wall_time_s,
        templates=templates,
        generation_params=params.as_dict(),
        concurrency=concurrency,
        items=done,
    )
