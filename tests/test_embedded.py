"""EmbeddedEngine on the tiny model, and create_engine's choice of engine."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backend.inference import UnavailableEngine, create_engine
from backend.inference.embedded import EmbeddedEngine
from backend.inference.errors import InputTooLong, ModelNotLoaded
from backend.inference.remote import RemoteEngine
from backend.inference.types import Delta, GenerationParams, Reply
from backend.settings import Settings

PARAMS = GenerationParams(temperature=0.6, top_p=0.95, max_tokens=64, seed=3)


def split(deltas: list[Delta]) -> tuple[str, str, list[Delta]]:
    reply = Reply()
    for delta in deltas:
        reply.add(delta)
    return reply.reasoning, reply.answer, [d for d in deltas if d.kind == "usage"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> EmbeddedEngine:
    return EmbeddedEngine(str(tiny_model_dir))


@pytest.mark.parametrize("prompt", ["Which drug lowers blood pressure?", "患者女性，30岁，头痛三天。"])
def test_streams_reasoning_then_answer(engine: EmbeddedEngine, prompt: str) -> None:
    deltas = list(engine.stream(prompt, PARAMS))
    reasoning, answer, usage = split(deltas)
    assert "think" in reasoning and "</think>" not in reasoning
    assert answer.startswith("The answer is ") and "<｜" not in answer
    assert deltas[-1] == usage[0]
    assert usage[0].prompt_tokens and usage[0].prompt_tokens > 5
    assert usage[0].completion_tokens and usage[0].completion_tokens > 5


def test_records_the_attention_and_reports_status(engine: EmbeddedEngine) -> None:
    engine.load()
    assert engine.attn_implementation in {"sdpa", "eager", "flash_attention_2", "flash_attention_3"}
    assert engine.status().startswith(f"Running {engine.model} inside MedLite on ")
    assert engine.attn_implementation in engine.status()


def test_one_model_serves_concurrent_requests(engine: EmbeddedEngine) -> None:
    results: list[tuple[str, str, list[Delta]]] = []

    def ask() -> None:
        results.append(split(list(engine.stream("Chest pain and sweating?", PARAMS))))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert all(reasoning and answer for reasoning, answer, _ in results)
    assert engine.load() is engine.load()


def test_seed_repeats_the_reply(engine: EmbeddedEngine) -> None:
    params = GenerationParams(temperature=1.0, top_p=1.0, max_tokens=40, seed=11)
    assert list(engine.stream("Dose of amoxicillin?", params)) == list(engine.stream("Dose of amoxicillin?", params))


def test_token_limit_keeps_unfinished_reasoning_as_reasoning(engine: EmbeddedEngine) -> None:
    reasoning, answer, usage = split(list(engine.stream("q", GenerationParams(max_tokens=4, seed=1))))
    assert reasoning and answer == ""
    assert usage[0].completion_tokens == 4 and usage[0].finish_reason == "length"


def test_prompt_beyond_the_context_is_too_long(engine: EmbeddedEngine) -> None:
    with pytest.raises(InputTooLong) as caught:
        list(engine.stream("fever " * 5000, PARAMS))
    assert "4096" in str(caught.value)


def test_create_engine_picks_embedded_without_loading(tiny_model_dir: Path) -> None:
    engine = create_engine(Settings(model=str(tiny_model_dir)))
    assert isinstance(engine, EmbeddedEngine)
    assert (engine.name, engine.model, engine.url) == ("embedded", str(tiny_model_dir), None)
    assert engine.status() == f"{tiny_model_dir} will be loaded inside MedLite for the first question."


def test_create_engine_picks_remote_with_a_url() -> None:
    engine = create_engine(Settings(backend_url="http://127.0.0.1:9/v1/", model="served-r1", request_timeout_s=5))
    assert isinstance(engine, RemoteEngine)
    assert (engine.name, engine.model, engine.url) == ("remote", "served-r1", "http://127.0.0.1:9/v1")


def test_bad_model_path_gives_an_unavailable_engine(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    engine = create_engine(Settings(model=str(missing)))
    assert isinstance(engine, UnavailableEngine)
    assert engine.name == "unavailable" and engine.url is None
    status = engine.status()
    assert status.startswith("No model is available: cannot find the model")
    assert str(missing) in status and "MEDLITE_MODEL" in status and "MEDLITE_BACKEND_URL" in status
    with pytest.raises(ModelNotLoaded) as caught:
        list(engine.stream("q", PARAMS))
    assert "MEDLITE_MODEL" in caught.value.user_message and "MEDLITE_BACKEND_URL" in caught.value.user_message


def test_no_model_configured_gives_an_unavailable_engine() -> None:
    engine = create_engine(Settings())
    assert isinstance(engine, UnavailableEngine)
    assert "neither MEDLITE_MODEL nor MEDLITE_BACKEND_URL is set" in engine.status()


def test_model_without_weights_fails_on_first_use(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    engine = create_engine(Settings(model=str(broken)))
    assert isinstance(engine, EmbeddedEngine)
    with pytest.raises(ModelNotLoaded) as caught:
        list(engine.stream("q", PARAMS))
    assert str(broken) in str(caught.value)
    assert engine.status().startswith(f"Could not load {broken}: ")


def test_a_closed_engine_lets_its_model_go_and_loads_again_when_asked(tiny_model_dir: Path) -> None:
    engine = EmbeddedEngine(str(tiny_model_dir))
    first = split(list(engine.stream("q", GenerationParams(max_tokens=8, seed=3))))
    worker = engine._scheduler._worker
    engine.close()
    assert not worker.is_alive() and engine._loaded is None
    assert split(list(engine.stream("q", GenerationParams(max_tokens=8, seed=3)))) == first
