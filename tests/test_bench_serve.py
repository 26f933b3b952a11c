"""`bench serve` on the tiny model and a scripted OpenAI-compatible server: the report's shape."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import pytest

from backend.bench.serve import add_serve_command, parse_concurrency
from storage.benchmark_runs import BenchmarkRunStore
from storage.db import Database
from tests.fixtures.models import Reply as ScriptedReply
from tests.fixtures.models import ScriptedServer, content_chunk, finish_chunk


def run_bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_serve_command(parser.add_subparsers(dest="bench_command", required=True))
    args = parser.parse_args(["serve", *argv])
    return args.run(args)


def test_reports_every_mode_at_every_concurrency(
    tiny_model_dir: Path,
    scripted_server: Callable[..., ScriptedServer],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEDLITE_DATABASE_URL", sqlite_url)
    server = scripted_server(
        ScriptedReply.streaming(
            content_chunk("<think>\nfever"),
            content_chunk(" and cough"),
            content_chunk("</think>The answer is A."),
            finish_chunk(prompt_tokens=12, completion_tokens=9),
        ),
        models=["scripted-model"],
    )
    out = tmp_path / "serve.json"
    argv = ["--model", str(tiny_model_dir), "--base-url", server.url, "--concurrency", "3,1"]
    assert run_bench([*argv, "--max-new-tokens", "12", "--repeats", "1", "--out", str(out)]) == 0

    report = json.loads(out.read_text())
    assert report["concurrency"] == [1, 3] and report["max_new_tokens"] == 12
    assert report["models"][0]["attn_implementation"] in {"sdpa", "eager"}
    assert report["models"][0]["scheme"] == "float32"
    rows = {(run["mode"], run["concurrency"]): run for run in report["runs"]}
    assert set(rows) == {(mode, level) for mode in ("sequential", "batched", "remote") for level in (1, 3)}
    for (mode, level), run in rows.items():
        assert run["requests"] == level
        assert 0 < run["completion_tokens"] <= 12 * level or mode == "remote"
        assert run["tokens_per_s"] > 0 and run["speedup_vs_sequential"] > 0
        for figure in ("ttft_s", "itl_s"):
            assert 0 <= run[figure]["median"] <= run[figure]["p95"]
    assert rows[("remote", 3)]["completion_tokens"] == 27  # the server's usage, 9 per reply
    assert all(rows[("sequential", level)]["speedup_vs_sequential"] == 1.0 for level in (1, 3))
    # Seeded requests: both embedded modes generate the same replies.
    assert rows[("batched", 3)]["completion_tokens"] == rows[("sequential", 3)]["completion_tokens"]

    printed = capsys.readouterr().out
    assert "TTFT med" in printed and "speedup" in printed and "stored as benchmark run" in printed
    database = Database.open(sqlite_url)
    try:
        stored = BenchmarkRunStore(database).list("serve")
    finally:
        database.close()
    assert len(stored) == 1 and stored[0].results["runs"] == report["runs"]


def test_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--model .* is not a model folder"):
        run_bench(["--model", str(tmp_path), "--concurrency", "1"])


def test_concurrency_must_be_whole_positive_numbers() -> None:
    assert parse_concurrency("16,1,4,4") == [1, 4, 16]
    for bad in ("1,x", "0,4", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="--concurrency"):
            parse_concurrency(bad)
