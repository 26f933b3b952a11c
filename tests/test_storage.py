"""Storage on real databases: a SQLite file and the local PostgreSQL server.

Fixtures live in tests/fixtures/db.py.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from storage.db import Database, StorageUnavailable, create_db_engine, upgrade_database
from storage.models import Base, Feedback
from storage.passwords import hash_password, verify_password
from storage.repository import RecordNotFound, Store

TABLES = {"users", "consultations", "feedback", "audit_log", "evaluation_runs", "distillation_runs", "benchmark_runs"}


def consultation_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "user_name": "alice",
        "question_type": "diagnosis",
        "language": "zh",
        "template_id": "diagnosis-zh",
        "template_version": "1",
        "fields": {"主诉": "胸痛两小时，向左臂放射", "age": 58, "vitals": {"bp": "150/95", "hr": 102}},
        "rendered_prompt": "请根据以下信息给出鉴别诊断：胸痛两小时",
        "red_flags": ["胸痛 (chest pain)", "tachycardia"],
        "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "backend": "remote",
        "backend_url": "http://127.0.0.1:8000/v1",
        "generation_params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 512, "seed": None},
    }
    args.update(overrides)
    return args


# Migrations and schema


def test_migrations_can_run_again_without_change(database_url: str) -> None:
    upgrade_database(database_url)
    upgrade_database(database_url)
    database = Database.open(database_url)
    try:
        with database.engine.connect() as connection:
            assert TABLES <= set(inspect(connection).get_table_names())
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [("0003",)]
    finally:
        database.close()


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        upgrade_database(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_unreachable_database_names_the_url_without_its_password() -> None:
    url = "postgresql+psycopg://medlite:s3cret-pw@127.0.0.1:1/medlite"
    with pytest.raises(StorageUnavailable) as caught:
        Database.open(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "postgresql+psycopg://medlite:***@127.0.0.1:1/medlite" in message
    assert "check that the server is running" in message


def test_sqlite_file_where_no_folder_can_be_made_is_unavailable(tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    with pytest.raises(StorageUnavailable, match="cannot create the folder"):
        upgrade_database(f"sqlite:///{blocker / 'medlite.db'}")


def test_sqlite_folder_is_created(tmp_path) -> None:
    database = Database.open(f"sqlite:///{tmp_path / 'deeper' / 'still' / 'medlite.db'}")
    database.close()
    assert (tmp_path / "deeper" / "still" / "medlite.db").is_file()


def test_malformed_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="database URL is not a valid SQLAlchemy URL") as caught:
        create_db_engine("not a url with hunter22")
    assert "hunter22" not in str(caught.value)


# Consultations


def test_consultation_round_trip_keeps_json_and_chinese_text(store: Store) -> None:
    args = consultation_args()
    consultation_id = store.start_consultation(**args)

    started = store.get_consultation(consultation_id)
    assert started is not None
    assert started.status == "streaming"
    assert started.answer == "" and started.reasoning == "" and started.finished_at is None

    store.finish_consultation(
        consultation_id,
        reasoning="患者为中年男性，需排除急性冠脉综合征。",
        answer="首先考虑急性冠脉综合征，建议立即心电图检查。",
        status="complete",
        time_to_first_token_s=0.25,
        latency_s=3.5,
        prompt_tokens=120,
        completion_tokens=340,
    )
    finished = store.get_consultation(consultation_id)
    assert finished is not None
    for name in ("user_name", "question_type", "language", "template_id", "template_version"):
        assert getattr(finished, name) == args[name]
    assert finished.fields == args["fields"]
    assert finished.rendered_prompt == args["rendered_prompt"]
    assert finished.red_flags == args["red_flags"]
    assert finished.generation_params == args["generation_params"]
    assert (finished.model, finished.backend, finished.backend_url) == (
        args["model"],
        "remote",
        "http://127.0.0.1:8000/v1",
    )
    assert finished.reasoning == "患者为中年男性，需排除急性冠脉综合征。"
    assert finished.answer == "首先考虑急性冠脉综合征，建议立即心电图检查。"
    assert finished.status == "complete" and finished.error is None
    assert (finished.time_to_first_token_s, finished.latency_s) == (0.25, 3.5)
    assert (finished.prompt_tokens, finished.completion_tokens) == (120, 340)
    assert finished.created_at.tzinfo is not None
    assert finished.created_at.utcoffset() == timezone.utc.utcoffset(None)
    assert finished.finished_at is not None and finished.finished_at >= finished.created_at


def test_error_status_keeps_the_error_and_partial_answer(store: Store) -> None:
    consultation_id = store.start_consultation(
        **consultation_args(user_name="anonymous", backend="embedded", backend_url=None)
    )
    store.finish_consultation(
        consultation_id,
        reasoning="partial",
        answer="",
        status="error",
        error="The model server stopped answering.",
    )
    record = store.get_consultation(consultation_id)
    assert record is not None
    assert (record.status, record.error, record.reasoning) == (
        "error",
        "The model server stopped answering.",
        "partial",
    )
    assert record.backend_url is None and record.user_name == "anonymous"


def test_list_is_filtered_by_user_and_newest_first(store: Store) -> None:
    alice_ids = [store.start_consultation(**consultation_args(user_name="alice")) for _ in range(3)]
    bob_id = store.start_consultation(**consultation_args(user_name="bob"))

    assert [record.id for record in store.list_consultations("alice")] == alice_ids[::-1]
    assert [record.id for record in store.list_consultations("alice", limit=2)] == alice_ids[:0:-1]
    assert [record.id for record in store.list_consultations("bob")] == [bob_id]
    assert store.list_consultations("carol") == []
    assert store.count_consultations() == 4
    with pytest.raises(ValueError, match="limit"):
        store.list_consultations("alice", limit=0)


def test_bad_status_leaves_the_started_consultation_as_it_was(store: Store) -> None:
    consultation_id = store.start_consultation(**consultation_args())
    before = store.get_consultation(consultation_id)

    with pytest.raises(ValueError, match="status must be one of complete, incomplete, error"):
        store.finish_consultation(consultation_id, reasoning="r", answer="a", status="done")
    with pytest.raises(ValueError, match="status"):
        store.finish_consultation(consultation_id, reasoning="r", answer="a", status="streaming")
    with pytest.raises(ValueError, match="answer must be text"):
        store.finish_consultation(
            consultation_id, reasoning="r", answer=None, status="complete"  # type: ignore[arg-type]
        )

    assert store.get_consultation(consultation_id) == before
    assert store.count_consultations() == 1


def test_a_finished_consultation_is_not_overwritten(store: Store) -> None:
    consultation_id = store.start_consultation(**consultation_args())
    store.finish_consultation(consultation_id, reasoning="first", answer="kept", status="complete")
    finished = store.get_consultation(consultation_id)

    with pytest.raises(ValueError, match=f"consultation {consultation_id} is already complete"):
        store.finish_consultation(consultation_id, reasoning="", answer="", status="error")
    assert store.get_consultation(consultation_id) == finished


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"fields": ["not", "a", "mapping"]}, "fields"),
        ({"fields": {"when": object()}}, "fields"),
        ({"red_flags": "chest pain"}, "red_flags"),
        ({"red_flags": ["ok", 3]}, "red_flags"),
        ({"generation_params": {"temperature": float("nan")}}, "generation_params"),
        ({"template_id": "t" * 129}, "template_id"),
        ({"user_name": ""}, "user_name"),
        ({"user_name": "x" * 65}, "user_name"),
        ({"language": None}, "language"),
    ],
)
def test_bad_consultation_input_names_the_field_and_stores_nothing(
    store: Store, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        store.start_consultation(**consultation_args(**overrides))
    assert store.count_consultations() == 0
    assert store.list_audit_log() == []


def test_unknown_consultation_ids(store: Store) -> None:
    assert store.get_consultation(424242) is None
    with pytest.raises(RecordNotFound, match="consultation 424242 does not exist"):
        store.finish_consultation(424242, reasoning="", answer="", status="complete")
    with pytest.raises(KeyError):
        store.add_feedback(424242, user_name="alice", helpful=True)
    with pytest.raises(RecordNotFound, match="consultation 424242 does not exist"):
        store.add_feedback(424242, user_name="alice", helpful=True)


def test_foreign_key_is_enforced_by_the_database(store: Store) -> None:
    with pytest.raises(IntegrityError):
        with store.database.session() as session:
            session.add(Feedback(consultation_id=999, user_name="alice", helpful=True, comment=""))


# Feedback


def test_feedback_on_own_consultation_is_stored(store: Store) -> None:
    consultation_id = store.start_consultation(**consultation_args(user_name="alice"))
    feedback_id = store.add_feedback(
        consultation_id, user_name="alice", helpful=False, comment="答案遗漏了主动脉夹层"
    )
    [feedback] = store.list_feedback(consultation_id)
    assert feedback.id == feedback_id
    assert (feedback.user_name, feedback.helpful, feedback.comment) == (
        "alice",
        False,
        "答案遗漏了主动脉夹层",
    )


def test_feedback_on_someone_elses_consultation_is_refused(store: Store) -> None:
    consultation_id = store.start_consultation(**consultation_args(user_name="alice"))
    refusal = f"'bob' cannot give feedback on consultation {consultation_id}"
    with pytest.raises(PermissionError, match=refusal):
        store.add_feedback(consultation_id, user_name="bob", helpful=True)
    assert store.list_feedback(consultation_id) == []


def test_feedback_comment_and_helpful_are_checked(store: Store) -> None:
    consultation_id = store.start_consultation(**consultation_args())
    store.add_feedback(consultation_id, user_name="alice", helpful=True, comment="x" * 2000)
    with pytest.raises(ValueError, match="comment must be at most 2000 characters, got 2001"):
        store.add_feedback(consultation_id, user_name="alice", helpful=True, comment="x" * 2001)
    with pytest.raises(ValueError, match="helpful"):
        store.add_feedback(
            consultation_id, user_name="alice", helpful="yes"  # type: ignore[arg-type]
        )
    assert len(store.list_feedback(consultation_id)) == 1


# Users


def test_users_are_added_and_verified(store: Store) -> None:
    store.add_user("dr.chen", "clinician", "correct horse battery")
    store.add_user("root", "admin", "admin-password")

    user = store.verify_user("dr.chen", "correct horse battery")
    assert user is not None and (user.name, user.role) == ("dr.chen", "clinician")
    assert store.verify_user("dr.chen", "wrong password!") is None
    assert store.verify_user("nobody", "correct horse battery") is None
    admin = store.get_user("root")
    assert admin is not None and admin.role == "admin"
    assert store.get_user("nobody") is None
    assert store.count_users() == 2


def test_bad_users_are_refused_with_clear_messages(store: Store) -> None:
    store.add_user("dr.chen", "clinician", "correct horse battery")
    with pytest.raises(ValueError, match="user 'dr.chen' already exists"):
        store.add_user("dr.chen", "admin", "another password")
    with pytest.raises(ValueError, match="role must be one of clinician, admin, got 'nurse'"):
        store.add_user("dr.li", "nurse", "long enough password")
    with pytest.raises(ValueError, match="password must be at least 8 characters"):
        store.add_user("dr.li", "clinician", "short")
    with pytest.raises(ValueError, match="name must be at most 64 characters"):
        store.add_user("x" * 65, "clinician", "long enough password")
    assert store.count_users() == 1
    # The first user's password still works after the refused duplicate.
    assert store.verify_user("dr.chen", "correct horse battery") is not None


# Audit log


def test_writes_leave_audit_entries(store: Store) -> None:
    store.add_user("alice", "clinician", "alice-password")
    consultation_id = store.start_consultation(**consultation_args(user_name="alice"))
    store.finish_consultation(consultation_id, reasoning="r", answer="a", status="incomplete")
    feedback_id = store.add_feedback(consultation_id, user_name="alice", helpful=True)

    entries = store.list_audit_log()
    assert [entry.action for entry in entries] == [
        "feedback.add",
        "consultation.finish",
        "consultation.start",
        "user.add",
    ]
    assert all(entry.user_name == "alice" for entry in entries)
    assert entries[0].detail == {
        "feedback_id": feedback_id,
        "consultation_id": consultation_id,
        "helpful": True,
    }
    assert entries[1].detail == {"consultation_id": consultation_id, "status": "incomplete"}
    assert entries[2].detail["consultation_id"] == consultation_id
    assert entries[3].detail == {"name": "alice", "role": "clinician"}
    assert "password" not in str(entries[3].detail)


# Evaluation runs


def evaluation_run_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "user_name": "cli",
        "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "backend": "remote",
        "backend_url": "http://127.0.0.1:8080/v1",
        "dataset": "cmmlu",
        "data_path": "/data/cmmlu_medical",
        "limit": 2,
        "template_id": "exam-zh",
        "template_version": "1.0.0",
        "generation_params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 1024, "seed": None},
        "metrics": {
            "n": 2,
            "correct": 1,
            "accuracy": 0.5,
            "wilson_95": [0.0945, 0.9055],
            "per_subject": {"临床知识": {"n": 2, "correct": 1, "accuracy": 0.5}},
            "latency_s": {"count": 1, "mean": 1.25, "p50": 1.25, "p95": 1.25, "max": 1.25},
        },
        "items": [
            {"id": "clinical_knowledge-0", "gold": "C", "predicted": "C", "correct": True,
             "raw_answer": "答案：C", "subject": "临床知识", "latency_s": 1.25, "completion_tokens": 312,
             "error": None},
            {"id": "clinical_knowledge-1", "gold": "A", "predicted": None, "correct": False,
             "raw_answer": "", "subject": "临床知识", "latency_s": None, "completion_tokens": None,
             "error": "InferenceError: HTTP 500"},
        ],
    }
    args.update(overrides)
    return args


def test_evaluation_run_round_trip_keeps_metrics_items_and_chinese(store: Store) -> None:
    args = evaluation_run_args()
    run_id = store.add_evaluation_run(**args)
    run = store.get_evaluation_run(run_id)
    assert run is not None and run.id == run_id
    for name in (
        "user_name", "model", "backend", "backend_url", "dataset", "data_path", "limit",
        "template_id", "template_version", "generation_params", "metrics", "items",
    ):
        assert getattr(run, name) == args[name], name
    assert run.created_at.utcoffset() == timezone.utc.utcoffset(None)
    assert store.get_evaluation_run(run_id + 1) is None
    [entry] = store.list_audit_log()
    assert (entry.user_name, entry.action) == ("cli", "evaluation.add")
    assert entry.detail == {"evaluation_run_id": run_id, "dataset": "cmmlu", "model": args["model"], "backend": "remote"}


def test_evaluation_runs_are_listed_newest_first_without_items(store: Store) -> None:
    first = store.add_evaluation_run(**evaluation_run_args(dataset="medqa", limit=None, backend_url=None))
    second = store.add_evaluation_run(**evaluation_run_args(dataset="pubmedqa"))
    listed = store.list_evaluation_runs()
    assert [run.id for run in listed] == [second, first]
    assert not hasattr(listed[0], "items")
    assert listed[1].limit is None and listed[1].backend_url is None
    assert listed[0].metrics == evaluation_run_args()["metrics"]
    assert [run.id for run in store.list_evaluation_runs(limit=1)] == [second]
    with pytest.raises(ValueError, match="limit must be at least 1"):
        store.list_evaluation_runs(limit=0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"dataset": "x" * 33}, "dataset must be at most 32 characters"),
        ({"model": None}, "model must be text"),
        ({"limit": 0}, "limit must be a whole number of at least 1"),
        ({"metrics": {"accuracy": float("nan")}}, "metrics cannot be stored as JSON"),
        ({"items": [{"id": "q1"}, "not an object"]}, r"items\[1\] must be a mapping"),
        ({"items": "q1"}, "items must be a list of mappings"),
        ({"user_name": " "}, "user_name must be a non-empty string"),
    ],
)
def test_bad_evaluation_run_is_refused_and_nothing_stored(
    store: Store, override: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.add_evaluation_run(**evaluation_run_args(**override))
    assert store.list_evaluation_runs() == []
    assert store.list_audit_log() == []


# Passwords


def test_password_hashes_are_salted_and_verifiable() -> None:
    first = hash_password("correct horse battery")
    second = hash_password("correct horse battery")
    assert first != second
    assert first.startswith("scrypt$16384$8$5$") and first.count("$") == 5
    assert verify_password("correct horse battery", first)
    assert not verify_password("correct horse batterY", first)


def test_malformed_password_hash_is_reported() -> None:
    with pytest.raises(ValueError, match="password_hash"):
        verify_password("anything", "md5$abc")
    with pytest.raises(ValueError, match="password_hash is malformed"):
        verify_password("anything", "scrypt$16384$8$1$!!!$???")
