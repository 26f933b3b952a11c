"""The evaluation harness end to end: a scripted server whose answers are known, and a real one.

The scripted server (tests/fixtures/answer_server.py) reads each item's case name from the prompt
and replies as the case says, so accuracy, parse failures and errors are known in advance. The
command line runs as a subprocess against it and against a real `transformers serve`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from backend.evaluate.datasets import EvalItem
from backend.evaluate.runner import run_evaluation
from backend.evaluate.stats import wilson_interval
from backend.inference.remote import RemoteEngine
from backend.inference.types import GenerationParams
from storage.db import Database
from storage.repository import Store
from tests.fixtures.answer_server import answer_server, text_reply
from tests.fixtures.data import SHARED_DATA, needs_shared_data
from tests.fixtures.models import Reply, free_port

REPO = Path(__file__).resolve().parents[1]

OPTIONS = {"A": "Aspirin", "B": "Bisoprolol", "C": "Clopidogrel", "D": "Digoxin"}
PARAMS = GenerationParams(temperature=0.6, max_tokens=64)
CASE = re.compile(r"\[case:([a-z0-9-]+)\]")

# case -> (reply text, finish reason) for the cases answered with text.
SCRIPT: dict[str, tuple[str, str]] = {
    "correct-plain": ("Weighing the options.</think>The answer is B", "stop"),
    # The reasoning names A; only the answer part (C) may be read.
    "decoy-reasoning": ("First thought: The answer is A. Let me check again.</think>\n**Answer: C**", "stop"),
    # The reasoning names the gold letter, the answer part nothing: unreadable, never mined.
    "decoy-only": ("The answer is B, surely.</think>I cannot decide between these.", "stop"),
    "wrong": ("</think>The answer is D", "stop"),
    "unclosed": ("<think>The answer is A, but let me think more", "stop"),
    "truncated": ("Thinking: The answer is A and also", "length"),
    "flaky": ("</think>The answer is D", "stop"),
    "chinese": ("先分析各选项。</think>答案：C", "stop"),
    "yes-no-maybe": ("The evidence is mixed.</think>Answer: maybe", "stop"),
    # No think tags at all: a model that does not think, whose whole reply is its answer.
    "no-think": ("The answer is A", "stop"),
}


def make_item(case: str, gold: str, **fields) -> EvalItem:
    options = fields.pop("options", OPTIONS)
    question = fields.pop("question", f"[case:{case}] Which drug fits this patient best?")
    return EvalItem(id=case, question=question, options=options, gold=gold, **fields)


def scripted_items() -> list[EvalItem]:
    return [
        make_item("correct-plain", "B", subject="anatomy"),
        make_item("decoy-reasoning", "C", subject="pharmacology"),
        make_item("decoy-only", "B", subject="anatomy"),
        make_item("wrong", "A", subject="anatomy"),
        make_item("unclosed", "A"),
        make_item("truncated", "A"),
        make_item("always-500", "A"),
        make_item("flaky", "D", subject="pharmacology"),
        make_item("unrenderable", "A", options={**OPTIONS, "A": "x" * 600}),
        make_item("chinese", "C", question="[case:chinese] 下列哪种药物最适合该患者？", language="zh"),
        make_item(
            "yes-no-maybe",
            "C",
            question="[case:yes-no-maybe] Does the drug lower mortality?",
            options={"A": "yes", "B": "no", "C": "maybe"},
            kind="yes_no_maybe",
            context="In a cohort of 200 patients, mortality was 12% versus 15% (p = 0.4).",
        ),
        make_item("no-think", "A"),
    ]


class ScriptedAnswers:
    """Replies by case; `flaky` fails its first request; tracks how many replies run at once."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.hold_s = hold_s
        self.seen: Counter[str] = Counter()
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, prompt: str) -> Reply:
        case = CASE.search(prompt).group(1)
        with self._lock:
            self.seen[case] += 1
            first = self.seen[case] == 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.hold_s)
        with self._lock:
            self.in_flight -= 1
        if case == "always-500" or (case == "flaky" and first):
            return Reply.failing(500, "scripted internal error")
        text, finish_reason = SCRIPT[case]
        return text_reply(text, finish_reason=finish_reason)


def test_scripted_run_has_the_known_scores() -> None:
    answers = ScriptedAnswers()
    with answer_server(answers) as server:
        engine = RemoteEngine(server.url, max_retries=0)
        report = run_evaluation(
            scripted_items(), engine, concurrency=4, params=PARAMS, retries=2, progress=False, backoff_s=0.01
        )
        prompts = server.prompts()

    by_id = {item.id: item for item in report.items}
    assert [item.id for item in report.items] == [item.id for item in scripted_items()]
    assert (report.n, report.correct, report.wrong, report.parse_failures, report.errors) == (12, 6, 1, 3, 2)
    assert report.accuracy == 0.5
    assert report.wilson_95 == wilson_interval(6, 12)
    assert report.per_subject == {
        "anatomy": {"n": 3, "correct": 1, "accuracy": 1 / 3},
        "pharmacology": {"n": 2, "correct": 2, "accuracy": 1.0},
    }

    predicted = {item_id: result.predicted for item_id, result in by_id.items()}
    assert predicted == {
        "correct-plain": "B",
        "decoy-reasoning": "C",
        "decoy-only": None,
        "wrong": "D",
        "unclosed": None,
        "truncated": None,
        "always-500": None,
        "flaky": "D",
        "unrenderable": None,
        "chinese": "C",
        "yes-no-maybe": "C",
        "no-think": "A",
    }
    # Only the answer part is kept and read; the reasoning never reaches raw_answer.
    assert by_id["decoy-reasoning"].raw_answer == "**Answer: C**"
    assert by_id["decoy-only"].raw_answer == "I cannot decide between these."
    assert by_id["unclosed"].raw_answer == by_id["truncated"].raw_answer == ""
    assert [r.id for r in report.items if r.truncated] == ["truncated"] and report.truncated == 1

    # Failed requests are retried `retries` times; an unrenderable item is never sent.
    assert answers.seen["always-500"] == 3
    assert answers.seen["flaky"] == 2
    assert answers.seen["unrenderable"] == 0
    assert "HTTP 500" in by_id["always-500"].error
    assert by_id["unrenderable"].error.startswith("cannot render item unrenderable:")
    assert "option_a" in by_id["unrenderable"].error and "500" in by_id["unrenderable"].error

    # Each item went through the exam template of its language.
    chinese_prompt = next(p for p in prompts if "[case:chinese]" in p)
    assert "答案是X" in chinese_prompt and "C. Clopidogrel" in chinese_prompt
    assert "In a cohort of 200 patients" in next(p for p in prompts if "[case:yes-no-maybe]" in p)
    assert report.templates == {"exam-en": "1.0.0", "exam-zh": "1.0.0"}

    for item_id, (text, _) in SCRIPT.items():
        assert by_id[item_id].completion_tokens == len(text.split())
        assert by_id[item_id].latency_s is not None and by_id[item_id].latency_s >= 0
    for failed in ("always-500", "unrenderable"):
        assert by_id[failed].latency_s is None and by_id[failed].completion_tokens is None
    assert report.completion_tokens["count"] == len(SCRIPT)
    assert report.completion_tokens["total"] == sum(len(text.split()) for text, _ in SCRIPT.values())
    assert report.latency_s["count"] == len(SCRIPT)
    assert report.generation_params == PARAMS.as_dict()

    metrics = report.metrics()
    assert "items" not in metrics and metrics["n"] == 12
    json.dumps(report.as_dict())  # the report is JSON as it stands


def test_concurrency_is_bounded() -> None:
    answers = ScriptedAnswers(hold_s=0.05)
    items = [make_item("correct-plain", "B") for _ in range(12)]
    with answer_server(answers) as server:
        report = run_evaluation(
            items, RemoteEngine(server.url, max_retries=0), concurrency=3, params=PARAMS, progress=False
        )
    assert report.correct == 12
    assert answers.most_in_flight <= 3


def test_server_down_makes_every_item_an_error() -> None:
    engine = RemoteEngine(f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=0, timeout_s=5)
    items = scripted_items()[:3]
    report = run_evaluation(items, engine, concurrency=2, params=PARAMS, retries=1, progress=False, backoff_s=0.01)
    assert (report.n, report.correct, report.errors, report.parse_failures) == (3, 0, 3, 0)
    assert report.accuracy == 0.0
    assert all(item.error.startswith("ServerUnavailable: Cannot connect") for item in report.items)
    assert report.latency_s["count"] == 0 and report.latency_s["mean"] is None


def test_bad_arguments_are_refused() -> None:
    engine = RemoteEngine("http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        run_evaluation([], engine, concurrency=0, params=PARAMS)
    with pytest.raises(ValueError, match="retries must not be negative"):
        run_evaluation([], engine, concurrency=1, params=PARAMS, retries=-1)


# ---------------------------------------------------------------- the command line


def run_cli(*args: str, data_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEDLITE_DATA_DIR": str(data_dir)}
    for name in ("MEDLITE_DATABASE_URL", "MEDLITE_BACKEND_URL", "MEDLITE_MODEL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "backend", "evaluate", "--no-progress", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stored_runs(data_dir: Path) -> list:
    database = Database.open(f"sqlite:///{data_dir / 'medlite.db'}")
    try:
        store = Store(database)
        return [store.get_evaluation_run(summary.id) for summary in store.list_evaluation_runs()]
    finally:
        database.close()


def write_medmcqa(path: Path, count: int) -> Path:
    lines = []
    for index in range(count):
        record = {
            "id": f"q{index}",
            "question": f"[case:{'correct-plain' if index % 2 else 'wrong'}] Question {index}?",
            "opa": "Aspirin", "opb": "Bisoprolol", "opc": "Clopidogrel", "opd": "Digoxin",
            "cop": 2 if index % 2 else 1,
            "subject_name": "Pharmacology",
        }
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_scores_prints_writes_and_stores_a_run(tmp_path: Path) -> None:
    data = write_medmcqa(tmp_path / "dev.json", 6)
    out = tmp_path / "reports" / "run.json"
    with answer_server(ScriptedAnswers()) as server:
        result = run_cli(
            "--dataset", "medmcqa", "--data", str(data), "--base-url", server.url,
            "--limit", "5", "--concurrency", "2", "--max-tokens", "32", "--seed", "7", "--out", str(out),
            data_dir=tmp_path / "var",
        )
        bodies = server.chat_bodies()
    assert result.returncode == 0, result.stderr
    assert re.search(r"^accuracy +40\.0% +\(correct / n", result.stdout, re.MULTILINE)
    assert re.search(r"^Pharmacology +5 +2 +40\.0%$", result.stdout, re.MULTILINE)

    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["n"], report["correct"], report["wrong"], report["errors"]) == (5, 2, 3, 0)
    assert [item["id"] for item in report["items"]] == ["q0", "q1", "q2", "q3", "q4"]
    assert report["model"] == "scripted-model" and report["backend"] == "remote"
    assert report["generation_params"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32, "seed": 7}
    assert {body["max_tokens"] for body in bodies} == {32} and {body["seed"] for body in bodies} == {7}

    [stored] = stored_runs(tmp_path / "var")
    assert stored.id == report["run_id"]
    assert (stored.dataset, stored.limit, stored.data_path) == ("medmcqa", 5, str(data))
    assert (stored.template_id, stored.template_version) == ("exam-en", "1.0.0")
    assert (stored.model, stored.backend, stored.backend_url) == ("scripted-model", "remote", server.url)
    assert stored.metrics["accuracy"] == 0.4 and "items" not in stored.metrics
    assert stored.items == report["items"]


def test_cli_refuses_a_corrupt_file_and_stores_nothing(tmp_path: Path) -> None:
    data = write_medmcqa(tmp_path / "dev.json", 3)
    lines = data.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][:40]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(
        "--dataset", "medmcqa", "--data", str(data), "--base-url", "http://127.0.0.1:1/v1",
        "--out", str(tmp_path / "run.json"), data_dir=tmp_path / "var",
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {data}, line 2: expected a JSON object")
    assert not (tmp_path / "var").exists() and not (tmp_path / "run.json").exists()


def test_cli_missing_data_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "dev.json"
    result = run_cli("--dataset", "medmcqa", "--data", str(missing), data_dir=tmp_path / "var")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {missing}: file not found (expected the medmcqa data file or its folder)"


def test_cli_with_the_server_down_reports_every_item_as_an_error(tmp_path: Path) -> None:
    data = write_medmcqa(tmp_path / "dev.json", 2)
    out = tmp_path / "run.json"
    result = run_cli(
        "--dataset", "medmcqa", "--data", str(data), "--base-url", f"http://127.0.0.1:{free_port()}/v1",
        "--retries", "0", "--out", str(out), data_dir=tmp_path / "var",
    )
    assert result.returncode == 1
    assert "every item failed; first error: ServerUnavailable" in result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["n"], report["errors"], report["correct"]) == (2, 2, 0)
    [stored] = stored_runs(tmp_path / "var")
    assert stored.metrics["errors"] == 2


@pytest.mark.slow
@needs_shared_data
@pytest.mark.parametrize(
    ("dataset", "data"),
    [("medmcqa", SHARED_DATA / "medmcqa" / "dev.json"), ("pubmedqa", SHARED_DATA / "pubmedqa")],
)
def test_cli_against_transformers_serve_on_real_items(
    dataset: str, data: Path, openai_server: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    result = run_cli(
        "--dataset", dataset, "--data", str(data), "--base-url", openai_server, "--model", str(tiny_model_dir),
        "--limit", "4", "--concurrency", "2", "--max-tokens", "48", "--out", str(out),
        data_dir=tmp_path / "var",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["n"] == 4 and len(report["items"]) == 4
    assert report["correct"] + report["wrong"] + report["parse_failures"] + report["errors"] == 4
    assert report["errors"] == 0, [item["error"] for item in report["items"]]
    assert report["correct"] == sum(item["correct"] for item in report["items"])
    assert report["parse_failures"] == sum(item["predicted"] is None for item in report["items"])
    assert all(item["completion_tokens"] for item in report["items"])
    [stored] = stored_runs(tmp_path / "var")
    assert (stored.id, stored.dataset, stored.model) == (report["run_id"], dataset, str(tiny_model_dir))
    assert stored.items == report["items"]
