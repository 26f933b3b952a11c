"""The app launched for real, called through gradio_client as automation would call it."""

from __future__ import annotations

import pytest
from gradio_client import Client

from storage.db import Database
from storage.repository import Store

pytestmark = pytest.mark.slow
API_KEYS = {"answer", "reasoning", "red_flags", "consultation_id", "error"}


@pytest.fixture(scope="module")
def client(app_on_postgres) -> Client:
    url, _ = app_on_postgres
    return Client(url, verbose=False)


@pytest.fixture(scope="module")
def store(app_on_postgres) -> Store:
    _, database_url = app_on_postgres
    return Store(Database.open(database_url))


def test_templates_endpoint_lists_every_type_and_language(client):
    templates = client.predict(api_name="/templates")
    assert {(t["question_type"], t["language"]) for t in templates} == {
        (qt, lang) for qt in ("diagnosis", "drug", "exam", "triage") for lang in ("en", "zh")
    }
    for template in templates:
        assert {"id", "question_type", "language", "version", "fields", "examples"} <= set(template)
        for field in template["fields"]:
            assert {"name", "label", "kind", "required", "max_length"} <= set(field)
        assert len(template["examples"]) >= 2


@pytest.mark.parametrize("question_type", ["diagnosis", "drug", "exam", "triage"])
def test_consult_streams_and_stores_each_type(client, store, question_type):
    templates = client.predict(api_name="/templates")
    template = next(t for t in templates if t["question_type"] == question_type and t["language"] == "en")
    fields = template["examples"][0]["fields"]

    job = client.submit(question_type=question_type, language="en", fields=fields, api_name="/consult")
    partials = list(job)
    final = job.result()

    assert set(final) == API_KEYS
    assert final["error"] is None, final["error"]
    assert final["reasoning"].strip() and final["answer"].strip()
    assert len(partials) > 2, "the answer should arrive in several streamed pieces"
    assert all(set(p) == API_KEYS for p in partials)

    row = store.get_consultation(final["consultation_id"])
    assert row.question_type == question_type
    assert row.template_id == template["id"] and row.template_version == template["version"]
    assert row.status == "complete"
    assert row.answer == final["answer"] and row.reasoning == final["reasoning"]
    assert row.backend == "remote" and row.completion_tokens
    assert row.time_to_first_token_s is not None and row.latency_s >= row.time_to_first_token_s
    assert row.generation_params["temperature"] == 0.6 and row.generation_params["top_p"] == 0.95


def test_chest_pain_raises_red_flag_whatever_the_model_says(client):
    fields = {"age": 58, "sex": "male", "chief_complaint": "Crushing chest pain radiating to the left arm"}
    final = client.predict(question_type="diagnosis", language="en", fields=fields, api_name="/consult")
    assert any("chest pain" in flag.lower() for flag in final["red_flags"])


def test_bad_input_is_named_and_nothing_is_stored(client, store):
    before = store.count_consultations()
    final = client.predict(
        question_type="diagnosis", language="en", fields={"age": "old", "colour": "red"}, api_name="/consult"
    )
    assert final["consultation_id"] is None
    assert "age" in final["error"] and "colour" in final["error"] and "chief_complaint" in final["error"]
    assert store.count_consultations() == before


def test_chinese_messages_for_chinese_templates(client):
    final = client.predict(question_type="triage", language="zh", fields={}, api_name="/consult")
    assert final["error"] and any("\u4e00" <= ch <= "\u9fff" for ch in final["error"])


def test_unknown_question_type_is_refused_by_name(client):
    final = client.predict(question_type="surgery", language="en", fields={}, api_name="/consult")
    assert "surgery" in final["error"]
