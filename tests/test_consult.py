"""A consultation end to end through the service: real loopback servers, real databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backend.consult import ConsultationService
from backend.inference.remote import RemoteEngine
from backend.inference.types import GenerationParams
from storage.db import Database
from storage.repository import Store
from templates import get_template
from tests.fixtures.models import Reply, ScriptedServer, content_chunk, finish_chunk, free_port, reasoning_chunk

Scripted = Callable[..., ScriptedServer]
PARAMS = GenerationParams(max_tokens=64)
CHEST_PAIN = {"age": 58, "sex": "male", "chief_complaint": "Chest pain radiating to the left arm"}


def service_for(url: str, store: Store) -> ConsultationService:
    return ConsultationService(RemoteEngine(url, model="scripted-model", backoff_s=0.01, max_retries=1), store, PARAMS)


def consult(service: ConsultationService, **overrides: object) -> list:
    request = {"user_name": "dr_lee", "question_type": "diagnosis", "language": "en", "fields": CHEST_PAIN}
    return list(service.stream(**{**request, **overrides}))  # type: ignore[arg-type]


def test_streamed_consultation_is_stored_whole(scripted_server: Scripted, store: Store):
    server = scripted_server(
        Reply.streaming(
            content_chunk("Chest pain with "), content_chunk("risk factors.</th"), content_chunk("ink>\n\n## Findings"),
            content_chunk(" summary\nLikely ACS."), finish_chunk(prompt_tokens=80, completion_tokens=12),
        )
    )
    updates = consult(service_for(server.url, store))

    final = updates[-1]
    assert final.done and final.status == "complete" and final.error is None
    assert final.reasoning == "Chest pain with risk factors." and final.answer == "## Findings summary\nLikely ACS."
    assert any(u.answer and not u.done for u in updates), "the answer should stream in pieces"
    assert any("chest pain" in flag.lower() for flag in final.red_flags)

    row = store.get_consultation(final.consultation_id)
    assert (row.user_name, row.question_type, row.language) == ("dr_lee", "diagnosis", "en")
    template = get_template("diagnosis", "en")
    assert (row.template_id, row.template_version) == (template.id, template.version)
    assert row.fields == {"age": 58, "sex": "male", "chief_complaint": CHEST_PAIN["chief_complaint"]}
    assert "Chest pain radiating to the left arm" in row.rendered_prompt
    assert (row.reasoning, row.answer, row.status) == (final.reasoning, final.answer, "complete")
    assert (row.prompt_tokens, row.completion_tokens) == (80, 12)
    assert row.model == "scripted-model" and row.backend == "remote" and row.backend_url == server.url
    assert row.generation_params["temperature"] == 0.6 and row.generation_params["top_p"] == 0.95
    assert 0 <= row.time_to_first_token_s <= row.latency_s
    assert server.chat_bodies()[0]["messages"] == [{"role": "user", "content": row.rendered_prompt}]


def test_server_reasoning_field_is_kept_apart(scripted_server: Scripted, store: Store):
    server = scripted_server(
        Reply.streaming(reasoning_chunk("Weighing causes."), content_chunk("ESI 2."), finish_chunk())
    )
    final = consult(service_for(server.url, store), question_type="triage",
                    fields={"complaint": "Chest pain", "onset": "30 minutes ago"})[-1]
    assert (final.reasoning, final.answer) == ("Weighing causes.", "ESI 2.")


def test_cut_stream_keeps_the_partial_answer_marked_incomplete(scripted_server: Scripted, store: Store):
    server = scripted_server(Reply.streaming(content_chunk("Thinking</think>Give aspirin"), cut=True))
    final = consult(service_for(server.url, store))[-1]
    assert final.status == "incomplete" and "cut off" in final.error
    row = store.get_consultation(final.consultation_id)
    assert (row.status, row.answer, row.reasoning) == ("incomplete", "Give aspirin", "Thinking")
    assert "cut off" in row.error


def test_a_model_named_by_the_server_is_stored(scripted_server: Scripted, store: Store):
    server = scripted_server(Reply.streaming(content_chunk("Thinking</think>ACS."), finish_chunk()), models=["r1-7b"])
    engine = RemoteEngine(server.url, backoff_s=0.01, max_retries=1)  # no model given: asked from the server
    final = list(ConsultationService(engine, store, PARAMS).stream(
        user_name="dr_lee", question_type="diagnosis", language="en", fields=CHEST_PAIN
    ))[-1]
    assert store.get_consultation(final.consultation_id).model == "r1-7b"


def test_answer_cut_at_the_token_limit_is_stored_incomplete_saying_so(scripted_server: Scripted, store: Store):
    server = scripted_server(
        Reply.streaming(content_chunk("Thinking</think>Give aspirin and"), finish_chunk("length"))
    )
    final = consult(service_for(server.url, store))[-1]
    assert final.status == "incomplete" and "length limit" in final.error and "MEDLITE_MAX_NEW_TOKENS" in final.error
    row = store.get_consultation(final.consultation_id)
    assert (row.status, row.answer) == ("incomplete", "Give aspirin and")
    assert row.error == final.error
    zh = consult(service_for(server.url, store), language="zh")[-1]
    assert zh.status == "incomplete" and "长度上限" in zh.error


def test_server_down_is_a_plain_sentence_in_the_clinicians_language(store: Store):
    url = f"http://127.0.0.1:{free_port()}/v1"
    final = consult(service_for(url, store), language="zh", fields={**CHEST_PAIN, "sex": "male"})[-1]
    assert final.status == "error" and "无法连接模型服务器" in final.error
    row = store.get_consultation(final.consultation_id)
    assert row.status == "error" and row.answer == "" and row.error == final.error


def test_busy_server_is_retried_before_the_stream_starts(scripted_server: Scripted, store: Store):
    server = scripted_server(Reply.failing(429), Reply.streaming(content_chunk("r</think>ok"), finish_chunk()))
    final = consult(service_for(server.url, store))[-1]
    assert final.answer == "ok" and server.count("/chat/completions") == 2


def test_invalid_form_reaches_neither_model_nor_database(scripted_server: Scripted, store: Store):
    server = scripted_server(Reply.streaming(content_chunk("x"), finish_chunk()))
    updates = consult(service_for(server.url, store), fields={"age": 300, "sex": "male"})
    assert len(updates) == 1 and updates[0].consultation_id is None
    assert "age" in updates[0].error and "chief_complaint" in updates[0].error
    assert server.count("/chat/completions") == 0 and store.count_consultations() == 0


def test_exam_questions_raise_no_patient_red_flags(scripted_server: Scripted, store: Store):
    server = scripted_server(Reply.streaming(content_chunk("r</think>The answer is A"), finish_chunk()))
    fields = {"stem": "Which drug first for chest pain in ACS?", "option_a": "Aspirin", "option_b": "Warfarin"}
    final = consult(service_for(server.url, store), question_type="exam", fields=fields)[-1]
    assert final.red_flags == () and final.answer == "The answer is A"


def test_answer_still_streams_when_the_database_fails(scripted_server: Scripted, tmp_path: Path):
    store = Store(Database(f"sqlite:///{tmp_path / 'never-migrated.db'}"))  # no tables: every write fails
    server = scripted_server(Reply.streaming(content_chunk("r</think>Answer"), finish_chunk()))
    final = consult(service_for(server.url, store))[-1]
    assert final.answer == "Answer" and final.consultation_id is None
    assert "could not be saved" in final.error
