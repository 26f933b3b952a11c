"""ThinkSplitter: reasoning and answer kept apart however the stream is cut into chunks."""

from __future__ import annotations

import random

import pytest

from backend.inference.reasoning import ThinkSplitter
from backend.inference.types import Delta, Reply


def run(chunks: list[str], *, starts_in_reasoning: bool = True, truncated: bool = False) -> list[list[Delta]]:
    """Every feed's output, then the flush's output."""
    splitter = ThinkSplitter(starts_in_reasoning=starts_in_reasoning)
    outputs = [splitter.feed(chunk) for chunk in chunks]
    outputs.append(splitter.flush(truncated=truncated))
    return outputs


def joined(outputs: list[list[Delta]]) -> tuple[str, str]:
    reply = Reply()
    for output in outputs:
        for delta in output:
            reply.add(delta)
    return reply.reasoning, reply.answer


def expected_split(text: str, *, starts_in_reasoning: bool) -> tuple[str, str]:
    """The same rules applied to the whole text at once (see ThinkSplitter's docstring)."""
    body = text.lstrip()
    opened = body.startswith("<think>")
    if opened:
        body = body[len("<think>") :]
    elif not starts_in_reasoning:
        return "", body
    if "</think>" in body:
        reasoning, answer = body.split("</think>", 1)
        return reasoning.strip(), answer.lstrip()
    reasoning = body.strip()
    return ("", reasoning) if not opened and reasoning else (reasoning, "")


def test_r1_reply_without_opening_tag() -> None:
    reasoning, answer = joined(run(["Okay, chest pain.\nLikely MI.\n</think>\n\nThe answer is A."]))
    assert reasoning == "Okay, chest pain.\nLikely MI."
    assert answer == "The answer is A."


def test_explicit_opening_tag_is_removed() -> None:
    assert joined(run(["<think>\nhmm</think>\n\nYes."])) == ("hmm", "Yes.")
    assert joined(run(["  <think>hmm</think>Yes."], starts_in_reasoning=False)) == ("hmm", "Yes.")


def test_tags_split_at_every_character() -> None:
    text = "<think>a < b and c </ d</think>\n\nFinal: x < y </think> z"
    outputs = run(list(text), starts_in_reasoning=False)
    assert joined(outputs) == ("a < b and c </ d", "Final: x < y </think> z")


def test_only_a_possible_tag_is_held_back() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("Thinking about it </th") == [Delta("reasoning", "Thinking about it")]
    assert splitter.feed("ink>\n\nDone") == [Delta("answer", "Done")]
    assert splitter.feed(" now.") == [Delta("answer", " now.")]
    assert splitter.flush() == []


def test_one_feed_merges_deltas_of_a_kind() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("a b</think>c d") == [Delta("reasoning", "a b"), Delta("answer", "c d")]


def test_text_that_only_looks_like_a_tag_is_kept() -> None:
    assert joined(run(["x </thinking> y"])) == ("", "x </thinking> y")
    assert joined(run(["<thinking>y</think>z"])) == ("<thinking>y", "z")


def test_a_reply_that_never_thinks_becomes_the_answer() -> None:
    # Started in reasoning only by assumption and finished without </think>: a non-thinking
    # model; the end of the stream says so, and the text moves from reasoning to answer.
    outputs = run(["The answer ", "is B."])
    assert outputs[:2] == [[Delta("reasoning", "The answer")], [Delta("reasoning", " is B.")]]
    assert outputs[-1] == [Delta("reasoning_is_answer")]
    assert joined(outputs) == ("", "The answer is B.")


def test_reasoning_cut_by_the_token_limit_stays_reasoning() -> None:
    assert joined(run(["Still thinking about"], truncated=True)) == ("Still thinking about", "")


def test_explicitly_opened_reasoning_never_becomes_the_answer() -> None:
    assert joined(run(["<think>Still thinking"])) == ("Still thinking", "")


def test_without_starting_in_reasoning_plain_text_is_answer() -> None:
    outputs = run(["\n\nPlain ", "answer."], starts_in_reasoning=False)
    assert outputs[0] == [Delta("answer", "Plain ")]
    assert joined(outputs) == ("", "Plain answer.")


def test_empty_stream_gives_nothing() -> None:
    assert run([]) == [[]]
    assert run(["", "  \n"]) == [[], [], []]


SAMPLES = [
    ("Let me think.\n\nStep 1: fever.\n</think>\n\nThe answer is A.", True),
    ("<think>\n推理：胸痛，出汗。\n</think>\n\n答案是A。", True),
    ("  <think>a</think>b</think>c<think>d", False),
    ("No thinking at all, just an answer.\n", True),
    ("No thinking at all, just an answer.\n", False),
    ("<think>cut short while thinking <", True),
    ("<thi", True),
    ("</think>answer only", True),
    ("reasoning with < and </ and </thin and </think >\n\n</think>  \n ans < </think>", True),
    ("\n\n<think>\n\n</think>\n\n", False),
]


@pytest.mark.parametrize("case", range(300))
def test_random_chunkings_give_the_same_split(case: int) -> None:
    rng = random.Random(case)
    text, starts_in_reasoning = SAMPLES[case % len(SAMPLES)]
    cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, min(12, len(text) - 1))))
    chunks = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
    outputs = run(chunks, starts_in_reasoning=starts_in_reasoning)
    assert joined(outputs) == expected_split(text, starts_in_reasoning=starts_in_reasoning)
    for output in outputs:
        assert all(delta.text or delta.kind == "reasoning_is_answer" for delta in output)
        assert all(a.kind != b.kind for a, b in zip(output, output[1:]))
