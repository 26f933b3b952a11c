"""Sequence-level data from a served teacher: requests go out several at a time, contradicting and
unreadable answers are dropped, a restart asks only for what is missing, a server that is down stops
the run with a clear message keeping what was written, and the served teacher is scored through its
server (no logits there, so no KL, said plainly)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from backend.distill.config import config_from_dict
from backend.distill.data import Example
from backend.distill.generate import ANSWERS_FILE, teacher_answers, teacher_engine
from backend.distill.metrics import evaluate_run
from backend.evaluate.datasets import EvalItem
from backend.inference.errors import InferenceError
from tests.fixtures.answer_server import answer_server, text_reply
from tests.fixtures.processes import free_port

ITEMS = [
    EvalItem(id=str(n), question=f"Case {n}: which drug?", options={"A": "x", "B": "y", "C": "z"}, gold="ABC"[n % 3])
    for n in range(12)
]
EXAMPLES = [Example(id=f"medmcqa-{i.id}", prompt=i.question, answer="gold", item=i) for i in ITEMS]
WRONG_LETTER = {1: "C", 5: "A"}  # the served teacher contradicts the gold label here (gold B and C)
UNREADABLE = {7}  # writes no answer line here
CUT_AT_LIMIT = {10}  # and stops at the token limit here, after the letter


class Teacher:
    """Scripted teacher answers, keyed by the case number in the prompt; counts requests in flight."""

    def __init__(self, delay_s: float = 0.05) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, prompt: str):
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.delay_s)  # long enough for the other requests to arrive
        with self._lock:
            self.in_flight -= 1
        n = int(re.search(r"Case (\d+)", prompt).group(1))
        if n in UNREADABLE:
            return text_reply("<think>\nHmm.\n</think>\n\nI am not sure.")
        letter = WRONG_LETTER.get(n, ITEMS[n].gold)
        text = f"<think>\nCase {n} points to {letter}.\n</think>\n\nThe answer is {letter}. Because"
        return text_reply(text, finish_reason="length" if n in CUT_AT_LIMIT else "stop")


def _config(tmp_path: Path, url: str, concurrency: int = 4):
    return config_from_dict(
        {
            "name": "served",
            "output_dir": str(tmp_path / "run"),
            "data": {"sources": [{"kind": "jsonl", "path": "unused.jsonl"}]},
            "teacher": {"model": "served-teacher", "finetune": False, "server_url": url, "server_model": "teacher"},
            "student": {"model": "unused"},
            "generation": {"max_new_tokens": 64, "concurrency": concurrency},
        }
    )


def test_a_served_teacher_writes_concurrently_and_wrong_answers_are_dropped(tmp_path: Path) -> None:
    teacher = Teacher()
    with answer_server(teacher) as server:
        config = _config(tmp_path, server.url)
        answers_file = tmp_path / ANSWERS_FILE
        kept, summary = teacher_answers(config, teacher_engine(config, "unused"), EXAMPLES, answers_file)
        assert teacher.most_in_flight > 1  # requests overlapped
        assert (summary.written, summary.kept, summary.contradicting, summary.unreadable, summary.truncated) == (
            12, 8, 2, 1, 1
        )
        dropped = {*WRONG_LETTER, *UNREADABLE, *CUT_AT_LIMIT}
        assert [e.id for e in kept] == [e.id for e in EXAMPLES if int(e.item.id) not in dropped]
        assert kept[0].answer == "Case 0 points to A.\n</think>\n\nThe answer is A. Because"
        assert {body["model"] for body in server.chat_bodies()} == {"teacher"}
        assert len(answers_file.read_text().splitlines()) == 12

        asked = server.count("/chat/completions")
        again, _ = teacher_answers(config, teacher_engine(config, "unused"), EXAMPLES, answers_file)
        assert server.count("/chat/completions") == asked  # a restart asks for nothing already written
        assert again == kept


def test_a_teacher_server_that_is_down_stops_with_a_message_and_keeps_what_was_written(tmp_path: Path) -> None:
    answers_file = tmp_path / ANSWERS_FILE
    written = {"id": EXAMPLES[0].id, "answer": "\n</think>\n\nThe answer is A."}
    answers_file.write_text(json.dumps(written) + "\n")
    config = _config(tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(InferenceError) as failure:
        teacher_answers(config, teacher_engine(config, "unused"), EXAMPLES, answers_file)
    assert str(failure.value).startswith(f"Cannot connect to {config.teacher.server_url}")
    assert json.loads(answers_file.read_text().splitlines()[0]) == written


def test_a_served_teacher_is_scored_through_its_server(tmp_path: Path, tiny_model_dir: Path) -> None:
    with answer_server(Teacher(delay_s=0)) as server:
        config = _config(tmp_path, server.url)
        metrics = evaluate_run(
            teacher_path=None,  # the teacher is only behind its server
            student_before_path=tiny_model_dir,
            student_after_path=tiny_model_dir,
            sets={"transfer": EXAMPLES[:6], "validation": EXAMPLES[6:]},
            max_new_tokens=16,
            batch_size=4,
            teacher_engine=teacher_engine(config, "unused"),
            concurrency=4,
        )
    assert metrics["transfer"]["teacher"]["accuracy"] == pytest.approx(4 / 6)  # cases 1 and 5 wrong
    assert metrics["validation"]["teacher"]["accuracy"] == pytest.approx(5 / 6)  # case 7 unreadable
    for name in ("transfer", "validation"):
        for role in ("student_before", "student_after"):  # the tiny model's letters, read and compared
            assert 0 <= metrics[name][role]["agreement"] <= 1 and 0 <= metrics[name][role]["accuracy"] <= 1
    kl = metrics["transfer"]["kl_teacher_student"]
    assert kl["before"] is None and kl["after"] is None and "teacher is served" in kl["note"]
