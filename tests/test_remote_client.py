"""RemoteEngine against a real `transformers serve` and a scripted loopback server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.inference import types
from backend.inference.errors import (
    InferenceError,
    InferenceTimeout,
    InputTooLong,
    ServerBusy,
    ServerUnavailable,
    StreamInterrupted,
)
from backend.inference.remote import RemoteEngine
from backend.inference.types import Delta, GenerationParams
from tests.fixtures.models import (
    Reply,
    ScriptedServer,
    content_chunk,
    finish_chunk,
    free_port,
    reasoning_chunk,
)

Scripted = Callable[..., ScriptedServer]
PARAMS = GenerationParams(temperature=0.6, top_p=0.95, max_tokens=64, seed=7)


def split(deltas: list[Delta]) -> tuple[str, str, list[Delta]]:
    reply = types.Reply()
    for delta in deltas:
        reply.add(delta)
    return reply.reasoning, reply.answer, [d for d in deltas if d.kind == "usage"]


def engine_for(server: ScriptedServer, **options: object) -> RemoteEngine:
    options = {"model": "scripted-model", "backoff_s": 0.01, **options}
    return RemoteEngine(server.url, **options)  # type: ignore[arg-type]


def test_session_is_offline() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"


# ----------------------------------------------------------------------- real transformers serve


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["Which drug lowers blood pressure?", "患者男性，45岁，胸痛两小时。最可能的诊断？"])
def test_transformers_serve_streams_reasoning_then_answer(
    openai_server: str, tiny_model_dir: Path, prompt: str
) -> None:
    engine = RemoteEngine(openai_server, model=str(tiny_model_dir))
    deltas = list(engine.stream(prompt, PARAMS))
    reasoning, answer, usage = split(deltas)
    assert "think" in reasoning and "</think>" not in reasoning
    assert answer.startswith("The answer is ")
    assert deltas[-1].kind == "usage"
    assert usage[0].prompt_tokens and usage[0].prompt_tokens > 5
    assert usage[0].completion_tokens and usage[0].completion_tokens > 5


@pytest.mark.slow
def test_transformers_serve_status(openai_server: str, tiny_model_dir: Path) -> None:
    engine = RemoteEngine(openai_server, model=str(tiny_model_dir))
    assert engine.status() == f"Connected to {openai_server} (model {tiny_model_dir})."


# ------------------------------------------------------------------------- scripted server: replies


def test_request_carries_the_prompt_and_sampling(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.streaming(content_chunk("Hi</think>Yes"), finish_chunk()))
    list(engine_for(server).stream("What is BP?", PARAMS))
    (body,) = server.chat_bodies()
    assert body["messages"] == [{"role": "user", "content": "What is BP?"}]
    assert body["model"] == "scripted-model"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.6, 0.95, 64, 7)


def test_think_tags_in_content_are_split(scripted_server: Scripted) -> None:
    server = scripted_server(
        Reply.streaming(
            content_chunk("Fever and cough.\n</th"),
            content_chunk("ink>\n\nThe answer"),
            content_chunk(" is B."),
            finish_chunk(prompt_tokens=12, completion_tokens=9),
        )
    )
    deltas = list(engine_for(server).stream("q", PARAMS))
    assert deltas == [
        Delta("reasoning", "Fever and cough."),
        Delta("answer", "The answer"),
        Delta("answer", " is B."),
        Delta("usage", prompt_tokens=12, completion_tokens=9, finish_reason="stop"),
    ]


@pytest.mark.parametrize("field_name", ["reasoning_content", "reasoning"])
def test_reasoning_sent_by_the_server_is_used(scripted_server: Scripted, field_name: str) -> None:
    server = scripted_server(
        Reply.streaming(
            reasoning_chunk("\nLikely pneumonia", field_name),
            reasoning_chunk(" given the fever.", field_name),
            content_chunk("\n\nThe answer is C."),
            finish_chunk(),
        )
    )
    reasoning, answer, usage = split(list(engine_for(server).stream("q", PARAMS)))
    assert (reasoning, answer) == ("Likely pneumonia given the fever.", "The answer is C.")
    assert usage == [Delta("usage", finish_reason="stop")]  # the server sent no token counts


def test_plain_answer_from_a_model_that_does_not_think(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.streaming(content_chunk("Take it with food."), finish_chunk("stop")))
    reasoning, answer, _ = split(list(engine_for(server).stream("q", PARAMS)))
    assert answer == "Take it with food."


def test_reasoning_cut_by_the_token_limit_is_not_shown_as_answer(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.streaming(content_chunk("Considering the causes"), finish_chunk("length")))
    reasoning, answer, [end] = split(list(engine_for(server).stream("q", PARAMS)))
    assert (reasoning, answer, end.finish_reason) == ("Considering the causes", "", "length")


def test_model_is_asked_from_the_server_once(scripted_server: Scripted) -> None:
    reply = Reply.streaming(content_chunk("a</think>b"), finish_chunk())
    server = scripted_server(reply, models=["served-r1", "other"])
    engine = engine_for(server, model=None)
    list(engine.stream("q", PARAMS))
    list(engine.stream("q", PARAMS))
    assert server.count("/models") == 1
    assert [body["model"] for body in server.chat_bodies()] == ["served-r1", "served-r1"]
    assert engine.model == "served-r1"


def test_model_falls_back_to_tgi_without_a_model_list(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.streaming(content_chunk("a</think>b"), finish_chunk()), models=None)
    list(engine_for(server, model=None).stream("q", PARAMS))
    assert server.chat_bodies()[0]["model"] == "tgi"


# ------------------------------------------------------------------------- scripted server: failures


def test_unavailable_server_is_retried_before_the_stream_starts(scripted_server: Scripted) -> None:
    server = scripted_server(
        Reply.failing(503, "loading"),
        Reply.failing(503, "loading"),
        Reply.streaming(content_chunk("ok</think>fine"), finish_chunk()),
    )
    _, answer, _ = split(list(engine_for(server, max_retries=3).stream("q", PARAMS)))
    assert answer == "fine"
    assert server.count("/chat/completions") == 3


def test_busy_server_gives_up_after_the_retries(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.failing(429, "too many requests"))
    with pytest.raises(ServerBusy) as caught:
        list(engine_for(server, max_retries=2).stream("q", PARAMS))
    assert server.count("/chat/completions") == 3
    assert "busy" in caught.value.user_message


@pytest.mark.parametrize("status", [400, 413, 422])
def test_rejected_input_is_too_long_and_not_retried(scripted_server: Scripted, status: int) -> None:
    server = scripted_server(Reply.failing(status, "inputs tokens + max_new_tokens must be <= 4096"))
    with pytest.raises(InputTooLong) as caught:
        list(engine_for(server).stream("q", PARAMS))
    assert "must be <= 4096" in str(caught.value)
    assert server.count("/chat/completions") == 1


def test_other_bad_requests_do_not_blame_the_text(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.failing(400, "model 'tgi' is not the served model"))
    with pytest.raises(InferenceError) as caught:
        list(engine_for(server).stream("q", PARAMS))
    assert not isinstance(caught.value, InputTooLong)
    assert "MEDLITE_MODEL" in caught.value.user_message and "not the served model" in str(caught.value)
    assert server.count("/chat/completions") == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_mean_unavailable(scripted_server: Scripted, status: int) -> None:
    server = scripted_server(Reply.failing(status))
    with pytest.raises(ServerUnavailable):
        list(engine_for(server, max_retries=1).stream("q", PARAMS))
    assert server.count("/chat/completions") == 2


def test_hanging_server_times_out(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.hanging(3))
    with pytest.raises(InferenceTimeout):
        list(engine_for(server, timeout_s=0.3, max_retries=1).stream("q", PARAMS))
    assert server.count("/chat/completions") == 2


def test_connection_refused_means_unavailable() -> None:
    engine = RemoteEngine(f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=1, backoff_s=0.01)
    with pytest.raises(ServerUnavailable) as caught:
        list(engine.stream("q", PARAMS))
    assert "not reachable" in caught.value.user_message
    assert engine.status().startswith(f"Cannot reach the model server at {engine.url}")


def test_stream_cut_midway_keeps_the_partial_reply_and_is_not_retried(scripted_server: Scripted) -> None:
    server = scripted_server(
        Reply.streaming(content_chunk("Thinking</think>The answer"), content_chunk(" is"), cut=True),
        Reply.streaming(content_chunk("never</think>sent"), finish_chunk()),
    )
    received: list[Delta] = []
    with pytest.raises(StreamInterrupted):
        for delta in engine_for(server).stream("q", PARAMS):
            received.append(delta)
    assert split(received)[:2] == ("Thinking", "The answer is")
    assert server.count("/chat/completions") == 1


def test_stream_closed_without_a_finish_reason_is_interrupted(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.streaming(content_chunk("half</think>an answ"), done=False))
    received: list[Delta] = []
    with pytest.raises(StreamInterrupted):
        for delta in engine_for(server).stream("q", PARAMS):
            received.append(delta)
    assert split(received)[:2] == ("half", "an answ")


def test_error_event_after_the_first_delta_is_interrupted(scripted_server: Scripted) -> None:
    server = scripted_server(Reply.streaming(content_chunk("a</think>b"), '{"error": "generation crashed"}'))
    with pytest.raises(StreamInterrupted) as caught:
        list(engine_for(server).stream("q", PARAMS))
    assert "cut off" in caught.value.user_message


def test_stream_cut_before_any_delta_is_retried(scripted_server: Scripted) -> None:
    server = scripted_server(
        Reply.streaming(cut=True),
        Reply.streaming(content_chunk("r</think>second try"), finish_chunk()),
    )
    _, answer, _ = split(list(engine_for(server).stream("q", PARAMS)))
    assert answer == "second try"
    assert server.count("/chat/completions") == 2


def test_status_reports_the_server_and_model(scripted_server: Scripted) -> None:
    server = scripted_server(models=["served-r1"])
    engine = engine_for(server, model=None)
    assert engine.status() == f"Connected to {server.url} (model served-r1)."
