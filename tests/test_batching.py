"""The batch scheduler on the tiny model: batched replies equal solo ones, and every way a row leaves."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from backend.inference import embedded
from backend.inference.batching import BatchScheduler, GenerationRequest
from backend.inference.embedded import EmbeddedEngine
from backend.inference.errors import InferenceError
from backend.inference.types import GenerationParams, Reply

GREEDY = GenerationParams(temperature=0, max_tokens=64)
QUESTIONS = [
    "Chest pain and sweating?",
    "Dose of amoxicillin for a child?",
    "q",
    "患者女性，30岁，头痛三天。",
    "What is the first-line treatment for uncomplicated hypertension in adults with diabetes?",
]
# The tiny model sees only its last 16 tokens, so greedy replies hardly depend on the question;
# seeded sampling gives each request a reply of its own, which shows rows never mix.
SEEDED = [GenerationParams(temperature=2.0, top_p=0.95, max_tokens=64, seed=seed) for seed in range(len(QUESTIONS))]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def prompts(model_and_tokenizer: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> list[list[int]]:
    _, tokenizer = model_and_tokenizer
    rendered = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
        for q in QUESTIONS
    ]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in rendered]


@contextmanager
def scheduler_for(
    model_and_tokenizer: tuple[PreTrainedModel, PreTrainedTokenizerBase], *, stop_at_eos: bool = True, **kwargs
) -> Iterator[BatchScheduler]:
    model, tokenizer = model_and_tokenizer
    scheduler = BatchScheduler(
        model,
        eos_token_ids=[tokenizer.eos_token_id] if stop_at_eos else [],
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )
    try:
        yield scheduler
    finally:
        scheduler.close()


@pytest.fixture
def scheduler(model_and_tokenizer: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> Iterator[BatchScheduler]:
    with scheduler_for(model_and_tokenizer) as scheduler:
        yield scheduler


@pytest.fixture
def endless(model_and_tokenizer: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> Iterator[BatchScheduler]:
    """A scheduler that ignores end-of-sentence, so replies run exactly to their token limit."""
    with scheduler_for(model_and_tokenizer, stop_at_eos=False) as scheduler:
        yield scheduler


def read_all(requests: list[GenerationRequest]) -> list[list[int]]:
    """Read every request's tokens on its own thread, as concurrent clinicians would."""
    replies: list[list[int]] = [[] for _ in requests]
    errors: list[BaseException] = []

    def read(index: int) -> None:
        try:
            replies[index] = list(requests[index].tokens())
        except BaseException as exc:  # re-raised below in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return replies


def solo_replies(
    scheduler: BatchScheduler, prompts: list[list[int]], max_new_tokens: int, params: list[GenerationParams]
) -> list[list[int]]:
    return [list(scheduler.submit(p, max_new_tokens, settings).tokens()) for p, settings in zip(prompts, params)]


def test_concurrent_greedy_replies_equal_the_solo_ones(scheduler: BatchScheduler, prompts: list[list[int]]) -> None:
    solo = solo_replies(scheduler, prompts, 64, [GREEDY] * len(prompts))
    batched = read_all([scheduler.submit(prompt, 64, GREEDY) for prompt in prompts * 2])
    assert batched == solo * 2


def test_concurrent_seeded_replies_equal_the_solo_ones(scheduler: BatchScheduler, prompts: list[list[int]]) -> None:
    solo = solo_replies(scheduler, prompts, 64, SEEDED)
    batched = read_all([scheduler.submit(prompt, 64, params) for prompt, params in zip(prompts, SEEDED)])
    assert batched == solo
    assert len(set(map(tuple, solo))) == len(solo)  # each its own reply


def test_requests_joining_mid_flight_get_their_solo_replies(endless: BatchScheduler, prompts: list[list[int]]) -> None:
    solo = solo_replies(endless, prompts[1:], 40, SEEDED[1:])
    first = endless.submit(prompts[0], 3000, GREEDY)
    first_tokens = first.tokens()
    for _ in range(5):
        next(first_tokens)
    joining = [endless.submit(prompt, 40, params) for prompt, params in zip(prompts[1:], SEEDED[1:])]
    assert read_all(joining) == solo
    first.cancel()
    assert all(first.joined_at_pass < request.joined_at_pass for request in joining)
    assert all(request.finished_at_pass is not None for request in joining)
    assert first.finished_at_pass is None  # the long request was still running while they came and went


def test_max_new_tokens_is_honoured(endless: BatchScheduler, prompts: list[list[int]]) -> None:
    limits = [1, 5, 17, 2, 9]
    requests = [endless.submit(prompt, limit, GREEDY) for prompt, limit in zip(prompts, limits)]
    assert [len(reply) for reply in read_all(requests)] == limits
    assert all(request.finish_reason == "length" for request in requests)


def test_end_of_sentence_retires_a_row_while_others_go_on(
    model_and_tokenizer: tuple[PreTrainedModel, PreTrainedTokenizerBase],
    scheduler: BatchScheduler,
    prompts: list[list[int]],
) -> None:
    eos = model_and_tokenizer[1].eos_token_id
    ending = scheduler.submit(prompts[0], 500, GREEDY)
    requests = [ending, scheduler.submit(prompts[1], 500, GREEDY)]
    replies = read_all(requests)
    assert replies[0][-1] == eos and eos not in replies[0][:-1]
    assert len(replies[0]) < 500 and ending.finish_reason == "stop"


def test_a_reader_that_stops_early_frees_its_slot(
    model_and_tokenizer: tuple[PreTrainedModel, PreTrainedTokenizerBase], prompts: list[list[int]]
) -> None:
    with scheduler_for(model_and_tokenizer, stop_at_eos=False, max_batch_size=1) as single:
        abandoned = single.submit(prompts[0], 3000, GREEDY)
        next(abandoned.tokens())
        abandoned.cancel()
        waiting = single.submit(prompts[1], 5, GREEDY)
        assert len(list(waiting.tokens())) == 5
        # It was let in long before the abandoned request would have reached its 3000 tokens.
        assert waiting.joined_at_pass < abandoned.joined_at_pass + 1000


def test_an_engine_stream_closed_early_frees_its_slot(tiny_model_dir: Path) -> None:
    engine = EmbeddedEngine(str(tiny_model_dir), max_batch_size=1)
    abandoned = engine.stream("Chest pain?", GenerationParams(max_tokens=3000, seed=1))
    next(abandoned)
    abandoned.close()
    reply = Reply()
    for delta in engine.stream("Dose of amoxicillin?", GenerationParams(max_tokens=30, seed=1)):
        reply.add(delta)
    assert reply.has_text and reply.completion_tokens


def test_a_failure_in_the_worker_reaches_the_reader(scheduler: BatchScheduler, prompts: list[list[int]]) -> None:
    vocabulary = scheduler.model.config.vocab_size
    broken = scheduler.submit([vocabulary + 7], 10, GREEDY)  # no such token: the embedding lookup fails
    with pytest.raises(InferenceError, match="generation failed"):
        list(broken.tokens())
    assert len(list(scheduler.submit(prompts[0], 10, GREEDY).tokens())) == 10  # the worker carries on


def test_a_closed_scheduler_fails_what_was_running(endless: BatchScheduler, prompts: list[list[int]]) -> None:
    running = endless.submit(prompts[0], 3000, GREEDY)
    tokens = running.tokens()
    next(tokens)
    endless.close()
    with pytest.raises(InferenceError, match="shut down"):
        list(tokens)
    with pytest.raises(InferenceError, match="stopped"):
        endless.submit(prompts[0], 3, GREEDY)


def test_bad_settings_are_refused(scheduler: BatchScheduler, prompts: list[list[int]]) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        scheduler.submit(prompts[0], 0, GREEDY)
    with pytest.raises(ValueError, match="prompt_ids"):
        scheduler.submit([], 5, GREEDY)
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchScheduler(scheduler.model, eos_token_ids=[0], max_batch_size=0)


def test_attention_falls_back_when_the_fastest_cannot_load(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a GPU host: FlashAttention 2 first. Without its package here it really fails to load.
    monkeypatch.setattr(embedded, "attention_candidates", lambda: ["flash_attention_2", "sdpa", "eager"])
    engine = EmbeddedEngine(str(tiny_model_dir))
    engine.load()
    assert engine.attn_implementation == "sdpa" and "sdpa attention" in engine.status()


def test_attention_candidates_on_this_machine() -> None:
    assert embedded.attention_candidates()[-2:] == ["sdpa", "eager"]
