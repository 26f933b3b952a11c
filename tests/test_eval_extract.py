import pytest

from backend.evaluate.datasets import YES_NO_MAYBE_OPTIONS, EvalItem
from backend.evaluate.extract import extract_answer, extract_choice, extract_yes_no_maybe, final_answer_text

EN = {"A": "Sarcoidosis", "B": "Tuberculosis", "C": "Lymphoma", "D": "Histoplasmosis"}
EN5 = {"A": "Thiamine", "B": "Riboflavin", "C": "Niacin", "D": "Pyridoxine", "E": "Cobalamin"}
ZH = {"A": "卵巢", "B": "前庭大腺", "C": "前庭球", "D": "乳腺"}
ZH_NESTED = {"A": "平均率", "B": "率", "C": "相对比", "D": "构成比"}

REASONING = "<think>\nThe hilar nodes suggest sarcoidosis, so the answer is A. But wait, night sweats...\n</think>\n\n"

CHOICE_CASES = [
    # plain English statements
    ("The answer is C", EN, "C"),
    ("The answer is (C).", EN, "C"),
    ("The answer is: C", EN, "C"),
    ("The answer is option C.", EN, "C"),
    ("**Answer: C**", EN, "C"),
    ("**Answer:** C", EN, "C"),
    ("Answer: C.", EN, "C"),
    ("Final answer: (C) Lymphoma", EN, "C"),
    ("Final Answer: C. Lymphoma", EN, "C"),
    ("the correct option is C", EN, "C"),
    ("The correct answer: C", EN, "C"),
    ("Correct answer is (c)", EN, "C"),
    ("The best choice is C because the biopsy shows Reed-Sternberg cells.", EN, "C"),
    ("I would choose C.", EN, "C"),
    ("Hence, (C) is correct.", EN, "C"),
    ("Option C is the correct answer.", EN, "C"),
    ("Answer — C", EN, "C"),
    ("Option C", EN, "C"),
    ("**Option C**", EN, "C"),
    ("Therefore the final answer is $\\boxed{C}$.", EN, "C"),
    ("\\[\\boxed{\\text{C}}\\]", EN, "C"),
    ("\\boxed{(C)}", EN, "C"),
    ("(C)", EN, "C"),
    ("C", EN, "C"),
    ("C.", EN, "C"),
    ("C) Lymphoma", EN, "C"),
    ("Based on the findings, the most likely diagnosis is:\n\n**C. Lymphoma**", EN, "C"),
    ("<answer>C</answer>", EN, "C"),
    # option text only
    ("Lymphoma", EN, "C"),
    ("lymphoma.", EN, "C"),
    ("The most likely diagnosis is lymphoma.", EN, "C"),
    # five options
    ("The answer is E", EN5, "E"),
    ("Pyridoxine (vitamin B6) prevents isoniazid neuropathy.", EN5, "D"),
    # Chinese
    ("答案：C", ZH, "C"),
    ("答案是C", ZH, "C"),
    ("正确答案为 C", ZH, "C"),
    ("选C", ZH, "C"),
    ("综上所述，本题应选择B。", ZH, "B"),
    ("答案：（A）", ZH, "A"),
    ("答案：Ｄ", ZH, "D"),
    ("正确选项是D", ZH, "D"),
    ("最终答案：选A", ZH, "A"),
    ("A项错误，B项错误，C项正确。", ZH, "C"),
    ("因此，正确答案是D选项。", ZH, "D"),
    ("答案应为 A。卵巢是女性的生殖腺。", ZH, "A"),
    ("卵巢", ZH, "A"),
    ("女性生殖腺是卵巢。", ZH, "A"),
    ("平均率", ZH_NESTED, "A"),
    # what the exam templates ask for: the answer line, then a short explanation that names other options
    (
        REASONING + "The answer is C\n\nReed-Sternberg cells mean lymphoma; sarcoidosis (A) has non-caseating granulomas "
        "and option B would show caseation.",
        EN,
        "C",
    ),
    ("<think>先分析各选项。</think>\n答案是A\n\n卵巢是女性生殖腺；选项B前庭大腺不是生殖腺，D项错误。", ZH, "A"),
    # the reasoning is never mined, and the last explicit statement wins
    (REASONING + "The answer is D.", EN, "D"),
    ("<think>Answer: B seems right.</think>The answer is D", EN, "D"),
    ("The hilar nodes point away from B.\n</think>\nFinal answer: (D) Histoplasmosis", EN, "D"),
    ("<think>first pass</think><think>second pass: answer is A</think>**Answer: B**", EN, "B"),
    ("The answer is B. On reflection, the answer is D.", EN, "D"),
    ("<think>\n答案是A吗？不对。\n</think>\n答案：C", ZH, "C"),
    # no answer
    (REASONING.replace("</think>", "") + "Still thinking, the answer is B", EN, None),
    ("<think>The answer is B", EN, None),
    (REASONING, EN, None),
    ("", EN, None),
    ("I am not sure.", EN, None),
    ("The answer is E", EN, None),  # E is not an option here
    ("A. Sarcoidosis\nB. Tuberculosis\nC. Lymphoma\nD. Histoplasmosis", EN, None),
    ("Sarcoidosis or tuberculosis are both possible.", EN, None),
    # article "A" is not a letter answer
    ("A 45-year-old man with cough needs a biopsy before any decision.", EN, None),
    ("A biopsy is needed.", EN, None),
    ("the answer is a bit unclear", EN, None),
    ("Answer: Cannot be determined", EN, None),
    ("Vitamin D is correct; B is incorrect.", EN, None),
    ("C is not correct.", EN, None),
]


@pytest.mark.parametrize(("output", "options", "expected"), CHOICE_CASES)
def test_extract_choice_real_world_phrasings(output, options, expected):
    assert extract_choice(output, options) == expected


def test_the_table_is_large_enough():
    assert len(CHOICE_CASES) >= 40


YES_NO_MAYBE_CASES = [
    ("yes", "yes"),
    ("Yes.", "yes"),
    ("**Yes**", "yes"),
    ("The answer is yes", "yes"),
    ("Answer: No.", "no"),
    ("Final decision: maybe", "maybe"),
    ("Yes, mitochondria take part in remodelling of the leaves.", "yes"),
    ("No, the score did not predict outcome.", "no"),
    ("Maybe; the evidence is mixed.", "maybe"),
    ("The data are limited.\n\nMaybe", "maybe"),
    ("<think>I think the answer is no.</think>\nThe answer is yes.", "yes"),
    ("Probably not.</think>Answer: \"no\"", "no"),
    ("答案：是", "yes"),
    ("答案是否定的。", "no"),
    ("答案：否", "no"),
    ("答案为可能", "maybe"),
    ("是的。", "yes"),
    ("可能。", "maybe"),
    ("<think>The answer is yes", None),
    ("No significant difference was found between the groups.", None),
    ("答案是根据研究结果得出的。", None),
    ("The study is well designed.", None),
]


@pytest.mark.parametrize(("output", "expected"), YES_NO_MAYBE_CASES)
def test_extract_yes_no_maybe_phrasings(output, expected):
    assert extract_yes_no_maybe(output) == expected


PUBMEDQA_ITEM = EvalItem(
    id="21645374",
    question="Do mitochondria play a role in remodelling lace plant leaves?",
    options=dict(YES_NO_MAYBE_OPTIONS),
    gold="A",
    kind="yes_no_maybe",
    context="Programmed cell death ...",
)
CHOICE_ITEM = EvalItem(id="q1", question="Most likely diagnosis?", options=EN, gold="C")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is yes", "A"),
        ("**No**", "B"),
        ("答案：可能", "C"),
        ("The answer is (C)", "C"),
        ("B", "B"),
        ("<think>yes</think>", None),
        # free text mentioning "no" is not read as the option text "no"
        ("There is no clear association.", None),
    ],
)
def test_extract_answer_maps_pubmedqa_words_to_letters(output, expected):
    assert extract_answer(output, PUBMEDQA_ITEM) == expected


def test_extract_answer_on_choice_items_is_extract_choice():
    assert extract_answer(REASONING + "Final answer: (C) Lymphoma", CHOICE_ITEM) == "C"
    assert extract_answer("Lymphoma", CHOICE_ITEM) == "C"
    assert extract_answer("<think>The answer is C", CHOICE_ITEM) is None


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("<think>a</think>b", "b"),
        ("a</think>b</think>c", "c"),
        ("<think>a", None),
        ("<think>a</think>b<think>c", None),
        ("no tags", "no tags"),
    ],
)
def test_final_answer_text(output, expected):
    assert final_answer_text(output) == expected
