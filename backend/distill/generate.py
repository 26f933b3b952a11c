"""Stage 3a: the teacher writes reasoning and answers for the training prompts.

It writes through any OpenAI-compatible server (how a 70B teacher really runs: TGI, vLLM) or
in-process with the app's embedded engine, several requests at a time so the server (or the
embedded engine's scheduler) can batch them. Answers the evaluation harness reads as contradicting
the gold label (or cannot read at all), and answers cut at the token limit, are dropped, so the
student never learns a wrong or unfinished answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from backend.distill.config import DistillConfig
from backend.distill.data import THINK_CLOSE, Example
from backend.evaluate.extract import extract_answer
from backend.inference.embedded import EmbeddedEngine
from backend.inference.engine import Engine
from backend.inference.remote import RemoteEngine
from backend.inference.types import GenerationParams, Reply

ANSWERS_FILE = "teacher_answers.jsonl"


@dataclass(frozen=True)
class GenerationSummary:
    written: int
    kept: int
    contradicting: int
    unreadable: int
    truncated: int  # cut at generation.max_new_tokens


def teacher_engine(config: DistillConfig, teacher_path: Path | str) -> Engine:
    if config.teacher.server_url:
        return RemoteEngine(config.teacher.server_url, model=config.teacher.server_model)
    return EmbeddedEngine(str(teacher_path), max_batch_size=config.generation.concurrency)


def _ask(engine: Engine, example: Example, params: GenerationParams) -> Reply:
    reply = Reply()
    for delta in engine.stream(example.prompt, params):
        reply.add(delta)
    return reply


def reply_text(reply: Reply) -> str:
    """The reply in R1's shape, as the student learns it: reasoning, `</think>`, answer."""
    return f"{reply.reasoning.strip()}\n{THINK_CLOSE}\n\n{reply.answer.strip()}"


def write_answers(
    engine: Engine, examples: Sequence[Example], params: GenerationParams, *, concurrency: int, desc: str
) -> Iterator[tuple[Example, Reply]]:
    """(example, reply) pairs as they finish, `concurrency` requests in flight.

    The first failure is raised at once: requests not yet sent are cancelled and those in flight
    are left to end on their own (their replies are not used)."""
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="teacher")
    try:
        futures = {pool.submit(_ask, engine, example, params): example for example in examples}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="item"):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def teacher_answers(
    config: DistillConfig, engine: Engine, examples: Sequence[Example], answers_file: Path
) -> tuple[list[Example], GenerationSummary]:
    """The examples with the teacher's answers in place of the gold ones, contradicting ones dropped.

    Every answer is appended to `answers_file` as it comes, so a restarted run asks only for the rest.
    """
    done: dict[str, tuple[str, bool]] = {}  # id -> (answer, cut at the token limit)
    if answers_file.is_file():
        for line in answers_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                done[record["id"]] = (record["answer"], record.get("truncated", False))
    params = GenerationParams(
        temperature=config.generation.temperature, max_tokens=config.generation.max_new_tokens, seed=config.seed
    )
    missing = [e for e in examples if e.id not in done]
    with answers_file.open("a", encoding="utf-8") as out:
        for example, reply in write_answers(
            engine, missing, params, concurrency=config.generation.concurrency, desc="teacher writing"
        ):
            done[example.id] = (reply_text(reply), reply.truncated)
            record = {"id": example.id, "answer": done[example.id][0], "truncated": reply.truncated}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
    kept: list[Example] = []
    contradicting = unreadable = truncated = 0
    for example in examples:
        answer, cut = done[example.id]
        if cut:
            truncated += 1
            continue
        if example.item is not None and not config.generation.keep_contradicting:
            predicted = extract_answer(answer, example.item)
            if predicted is None:
                unreadable += 1
                continue
            if predicted != example.item.gold:
                contradicting += 1
                continue
        kept.append(Example(id=example.id, prompt=example.prompt, answer=answer, item=example.item))
    summary = GenerationSummary(len(examples), len(kept), contradicting, unreadable, truncated)
    return kept, summary
