"""The app as a fresh install runs it: SQLite in its data folder, sign-in on, no model configured yet."""

from __future__ import annotations

import pytest
from gradio_client import Client

from storage.db import Database
from storage.repository import Store

pytestmark = pytest.mark.slow
CASE = {"complaint": "Headache", "onset": "this morning"}


def test_sign_in_is_required_once_a_user_exists(app_without_model):
    url, _ = app_without_model
    with pytest.raises(Exception):
        Client(url, verbose=False).predict(api_name="/templates")
    with pytest.raises(Exception):
        Client(url, auth=("dr_lee", "wrong password"), verbose=False)


def test_without_a_model_the_answer_says_how_to_set_one_and_the_attempt_is_kept(app_without_model):
    url, database_url = app_without_model
    client = Client(url, auth=("dr_lee", "correct horse battery"), verbose=False)
    final = client.predict(question_type="triage", language="en", fields=CASE, api_name="/consult")
    assert "MEDLITE_MODEL" in final["error"] and "MEDLITE_BACKEND_URL" in final["error"]
    assert final["answer"] == ""

    row = Store(Database.open(database_url)).get_consultation(final["consultation_id"])
    assert (row.user_name, row.status, row.backend) == ("dr_lee", "error", "unavailable")
