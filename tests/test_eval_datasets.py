import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from backend.evaluate.datasets import (
    DATASET_NAMES,
    DatasetError,
    EvalItem,
    item_to_exam_fields,
    load_cmmlu,
    load_dataset,
    load_medmcqa,
    load_medqa,
    load_mmlu,
    load_pubmedqa,
)
from tests.fixtures.data import SHARED_DATA, needs_shared_data

FIXTURE = Path(__file__).parent / "fixtures" / "medqa_small.jsonl"

MEDQA_RECORD = {
    "question": "Which vitamin deficiency causes scurvy?",
    "answer": "Vitamin C",
    "options": {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K"},
    "meta_info": "step1",
    "answer_idx": "B",
}


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- MedQA (own fixture)


def test_medqa_fixture_loads_four_and_five_option_items():
    items = load_medqa(FIXTURE)
    assert len(items) == 6
    assert Counter(len(item.options) for item in items) == {4: 3, 5: 3}
    first = items[0]
    assert first.id == "medqa_small-1"
    assert first.gold == "B"
    assert first.options["B"] == "Antibodies against the TSH receptor"
    assert list(first.options) == ["A", "B", "C", "D"]
    assert first.subject == "step1"
    assert first.kind == "choice" and first.language == "en" and first.context is None
    assert [item.gold for item in items] == ["B", "C", "B", "D", "A", "E"]


def test_medqa_limit_keeps_the_first_items():
    assert [item.id for item in load_medqa(FIXTURE, limit=2)] == ["medqa_small-1", "medqa_small-2"]


def test_medqa_folder_resolves_to_test_file(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "test.jsonl")
    write_lines(tmp_path / "train.jsonl", json.dumps(MEDQA_RECORD))
    assert len(load_medqa(tmp_path)) == 6


def test_medqa_folder_with_the_four_option_file_name(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "phrases_no_exclude_test.jsonl")
    assert len(load_dataset("medqa", tmp_path)) == 6


def test_medqa_chinese_questions_are_marked_zh(tmp_path):
    record = {**MEDQA_RECORD, "question": "坏血病是由哪种维生素缺乏引起的？"}
    assert load_medqa(write_lines(tmp_path / "test.jsonl", json.dumps(record, ensure_ascii=False)))[0].language == "zh"


def test_medqa_windows_line_ends_and_unicode_line_separator_inside_text(tmp_path):
    record = {**MEDQA_RECORD, "question": "First part\u2028second part"}
    path = tmp_path / "test.jsonl"
    path.write_bytes((json.dumps(record, ensure_ascii=False) + "\r\n" + json.dumps(MEDQA_RECORD) + "\r\n").encode())
    items = load_medqa(path)
    assert [item.id for item in items] == ["test-1", "test-2"]
    assert items[0].question == "First part\u2028second part"


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ('{"question": "broken', r"line 2: expected a JSON object, found invalid JSON"),
        ("[1, 2]", r"line 2: expected a JSON object, found list"),
        (json.dumps({k: v for k, v in MEDQA_RECORD.items() if k != "question"}), r"line 2: missing key 'question'"),
        (json.dumps({**MEDQA_RECORD, "answer_idx": "E"}), r"line 2: expected answer_idx among A, B, C, D, found 'E'"),
        (json.dumps({**MEDQA_RECORD, "answer": "Vitamin D"}), r"line 2: expected 'answer' to equal option B"),
        (json.dumps({**MEDQA_RECORD, "options": ["Vitamin A"]}), r"line 2: expected 'options' to be an object"),
        (json.dumps({**MEDQA_RECORD, "options": {"A": "x", "C": "y"}}), r"line 2: expected option letters A, B, C"),
        (json.dumps({**MEDQA_RECORD, "question": 7}), r"line 2: expected 'question' to be text, found int"),
    ],
)
def test_medqa_broken_line_is_named(tmp_path, second_line, message):
    path = write_lines(tmp_path / "broken.jsonl", json.dumps(MEDQA_RECORD), second_line)
    with pytest.raises(DatasetError, match=message) as excinfo:
        load_medqa(path)
    assert str(path) in str(excinfo.value)


def test_empty_file_is_reported(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"test.jsonl: the file is empty"):
        load_medqa(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere.jsonl: file not found"):
        load_dataset("medqa", tmp_path / "nowhere.jsonl")


def test_folder_without_the_expected_file_lists_what_it_found(tmp_path):
    write_lines(tmp_path / "notes.txt", "hello")
    with pytest.raises(DatasetError, match=r"expected ori_pqal.json .* found: none"):
        load_pubmedqa(tmp_path)


def test_non_utf8_file_is_reported(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_bytes(b'{"question": "\xff"}\n')
    with pytest.raises(DatasetError, match="expected UTF-8"):
        load_medqa(path)


def test_unknown_dataset_lists_the_valid_names(tmp_path):
    message = r"unknown data set 'usmle'; expected one of: medqa, pubmedqa, medmcqa, mmlu, cmmlu"
    with pytest.raises(DatasetError, match=message):
        load_dataset("usmle", tmp_path)


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit_is_refused(limit):
    with pytest.raises(ValueError, match="limit"):
        load_medqa(FIXTURE, limit=limit)


# ---------------------------------------------------------------- the real files


@needs_shared_data
def test_pubmedqa_real_file_test_split_by_default():
    items = load_dataset("pubmedqa", SHARED_DATA / "pubmedqa")
    assert len(items) == 500
    truth = json.loads((SHARED_DATA / "pubmedqa" / "test_ground_truth.json").read_text())
    assert {item.id for item in items} == set(truth)
    letter_of = {"yes": "A", "no": "B", "maybe": "C"}
    assert all(item.gold == letter_of[truth[item.id]] for item in items)
    first = items[0]
    assert first.kind == "yes_no_maybe"
    assert first.options == {"A": "yes", "B": "no", "C": "maybe"}
    assert first.question.endswith("?")
    assert first.context and "\n\n" in first.context


@needs_shared_data
def test_pubmedqa_real_file_all_records_match_readme_counts():
    items = load_pubmedqa(SHARED_DATA / "pubmedqa" / "ori_pqal.json", split="all")
    assert len(items) == 1000
    assert Counter(item.options[item.gold] for item in items) == {"yes": 552, "no": 338, "maybe": 110}
    assert items[0].id == "21645374"


@needs_shared_data
def test_pubmedqa_limit_keeps_file_order_not_label_order():
    items = load_pubmedqa(SHARED_DATA / "pubmedqa", limit=20)
    assert len(items) == 20
    assert len({item.gold for item in items}) > 1


@needs_shared_data
def test_medmcqa_real_file_count_and_one_based_cop():
    items = load_dataset("medmcqa", SHARED_DATA / "medmcqa")
    assert len(items) == 4183
    first = items[0]
    # The first dev record has cop 1: the untrue statement is opa (myelinated fibres conduct faster).
    assert first.id == "45258d3d-b974-44dd-a161-c3fccbdadd88"
    assert first.gold == "A"
    assert first.options["A"].startswith("Impulse through myelinated fibers is slower")
    assert first.subject == "Physiology"
    assert Counter(item.gold for item in items) == {"A": 1348, "B": 1085, "C": 925, "D": 825}


@needs_shared_data
def test_mmlu_real_files_count_and_subjects():
    items = load_dataset("mmlu", SHARED_DATA / "mmlu_medical")
    assert len(items) == 1089
    assert Counter(item.subject for item in items) == {
        "anatomy": 135,
        "clinical_knowledge": 265,
        "college_biology": 144,
        "college_medicine": 173,
        "medical_genetics": 100,
        "professional_medicine": 272,
    }
    assert items[0].id == "anatomy-0" and items[0].gold == "A"
    assert len(load_mmlu(SHARED_DATA / "mmlu_medical" / "anatomy_test.csv")) == 135


@needs_shared_data
def test_cmmlu_real_files_count_test_only():
    items = load_dataset("cmmlu", SHARED_DATA / "cmmlu_medical")
    assert len(items) == 1815
    assert all(item.language == "zh" for item in items)
    assert len({item.subject for item in items}) == 9
    first = items[0]
    assert (first.id, first.question, first.options["A"], first.gold) == ("anatomy-0", "女性生殖腺是", "卵巢", "A")


@needs_shared_data
def test_limit_applies_to_every_real_loader():
    folders = {"pubmedqa": "pubmedqa", "medmcqa": "medmcqa", "mmlu": "mmlu_medical", "cmmlu": "cmmlu_medical"}
    for name, folder in folders.items():
        assert len(load_dataset(name, SHARED_DATA / folder, limit=7)) == 7


# ---------------------------------------------------------------- broken files of the other formats


def pubmedqa_folder(tmp_path: Path, records: dict, truth: dict | None) -> Path:
    (tmp_path / "ori_pqal.json").write_text(json.dumps(records), encoding="utf-8")
    if truth is not None:
        (tmp_path / "test_ground_truth.json").write_text(json.dumps(truth), encoding="utf-8")
    return tmp_path


def pubmedqa_record(decision: str = "yes") -> dict:
    return {"QUESTION": "Does it work?", "CONTEXTS": ["Background.", "Results."], "final_decision": decision}


def test_pubmedqa_without_ground_truth_loads_all(tmp_path):
    folder = pubmedqa_folder(tmp_path, {"1": pubmedqa_record(), "2": pubmedqa_record("maybe")}, None)
    items = load_pubmedqa(folder)
    assert [(item.id, item.gold) for item in items] == [("1", "A"), ("2", "C")]
    assert items[0].context == "Background.\n\nResults."


def test_pubmedqa_test_split_needs_the_ground_truth_file(tmp_path):
    folder = pubmedqa_folder(tmp_path, {"1": pubmedqa_record()}, None)
    with pytest.raises(DatasetError, match=r"test_ground_truth.json: file not found .*split='all'"):
        load_pubmedqa(folder, split="test")


def test_pubmedqa_bad_decision_names_the_record(tmp_path):
    folder = pubmedqa_folder(tmp_path, {"1": pubmedqa_record(), "77": pubmedqa_record("perhaps")}, None)
    message = r"ori_pqal.json, record 77: expected 'final_decision' to be yes, no or maybe, found 'perhaps'"
    with pytest.raises(DatasetError, match=message):
        load_pubmedqa(folder)


def test_pubmedqa_missing_contexts_names_the_record(tmp_path):
    record = pubmedqa_record()
    del record["CONTEXTS"]
    folder = pubmedqa_folder(tmp_path, {"5": record}, None)
    with pytest.raises(DatasetError, match=r"record 5: expected 'CONTEXTS' to be a list of text"):
        load_pubmedqa(folder)


def test_pubmedqa_ground_truth_pmid_absent_from_data(tmp_path):
    folder = pubmedqa_folder(tmp_path, {"1": pubmedqa_record()}, {"1": "yes", "9": "no"})
    with pytest.raises(DatasetError, match=r"test_ground_truth.json, record 9: expected this PMID in the data file"):
        load_pubmedqa(folder)


def test_pubmedqa_ground_truth_disagreeing_label(tmp_path):
    folder = pubmedqa_folder(tmp_path, {"1": pubmedqa_record()}, {"1": "no"})
    with pytest.raises(DatasetError, match=r"record 1: expected the data file's final_decision 'yes', found 'no'"):
        load_pubmedqa(folder)


def test_pubmedqa_invalid_json_names_the_line(tmp_path):
    (tmp_path / "ori_pqal.json").write_text('{\n "1": {\n  "QUESTION": oops\n }\n}', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"ori_pqal.json, line 3: expected valid JSON"):
        load_pubmedqa(tmp_path, split="all")


MEDMCQA_RECORD = {
    "question": "Drug of choice for absence seizures?",
    "opa": "Ethosuximide",
    "opb": "Phenytoin",
    "opc": "Carbamazepine",
    "opd": "Phenobarbital",
    "cop": 1,
    "subject_name": "Pharmacology",
    "id": "x1",
}


@pytest.mark.parametrize("cop", [0, 5, "1", None])
def test_medmcqa_cop_out_of_range(tmp_path, cop):
    write_lines(tmp_path / "dev.json", json.dumps(MEDMCQA_RECORD), json.dumps({**MEDMCQA_RECORD, "cop": cop}))
    with pytest.raises(DatasetError, match=r"dev.json, line 2: expected 'cop' numbered 1-4 \(1 = opa\), found"):
        load_medmcqa(tmp_path)


def test_medmcqa_cop_maps_to_letters(tmp_path):
    lines = [json.dumps({**MEDMCQA_RECORD, "cop": cop, "id": f"x{cop}"}) for cop in (1, 2, 3, 4)]
    items = load_medmcqa(write_lines(tmp_path / "dev.json", *lines))
    assert [item.gold for item in items] == ["A", "B", "C", "D"]
    assert items[0].options["A"] == "Ethosuximide"


def test_medmcqa_missing_option_named(tmp_path):
    record = {k: v for k, v in MEDMCQA_RECORD.items() if k != "opc"}
    with pytest.raises(DatasetError, match=r"line 1: missing key 'opc'"):
        load_medmcqa(write_lines(tmp_path / "dev.json", json.dumps(record)))


def test_mmlu_wrong_column_count_names_the_line(tmp_path):
    write_lines(tmp_path / "virology_test.csv", "What is a virion?,particle,cell,toxin,prion,A", "Too few,a,b,C")
    message = r"virology_test.csv, line 2: expected 6 columns \(question, A, B, C, D, answer\), found 4"
    with pytest.raises(DatasetError, match=message):
        load_mmlu(tmp_path)


def test_mmlu_bad_answer_letter_counts_lines_across_quoted_newlines(tmp_path):
    path = write_lines(
        tmp_path / "virology_test.csv",
        '"A question\nthat spans\nthree lines",a,b,c,d,B',
        "Second,a,b,c,d,E",
    )
    message = r"virology_test.csv, line 4: expected the answer letter A, B, C or D, found 'E'"
    with pytest.raises(DatasetError, match=message):
        load_mmlu(path)


def test_mmlu_subject_and_ids_from_file_name(tmp_path):
    write_lines(tmp_path / "virology_test.csv", '"Multi\nline",a,b,c,d,B', "Second,a,b,c,d,D")
    write_lines(tmp_path / "virology_dev.csv", "Ignored,a,b,c,d,A")
    items = load_mmlu(tmp_path)
    assert [(item.id, item.subject, item.gold) for item in items] == [
        ("virology-0", "virology", "B"),
        ("virology-1", "virology", "D"),
    ]
    assert items[0].question == "Multi\nline"


def test_mmlu_folder_without_test_files(tmp_path):
    write_lines(tmp_path / "virology_dev.csv", "q,a,b,c,d,A")
    with pytest.raises(DatasetError, match=r"expected mmlu files matching \*_test.csv in this folder, found none"):
        load_mmlu(tmp_path)


def test_cmmlu_reads_test_folder_not_dev(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "dev").mkdir()
    write_lines(
        tmp_path / "test" / "virology.csv",
        ",Question,A,B,C,D,Answer",
        "0,病毒的核心是,核酸,蛋白质,脂质,糖类,A",
        "1,问题二,甲,乙,丙,丁,D",
    )
    write_lines(tmp_path / "dev" / "virology.csv", ",Question,A,B,C,D,Answer", "0,示例,甲,乙,丙,丁,B")
    items = load_cmmlu(tmp_path)
    assert [(item.id, item.gold, item.language, item.subject) for item in items] == [
        ("virology-0", "A", "zh", "virology"),
        ("virology-1", "D", "zh", "virology"),
    ]


def test_cmmlu_bad_header_named(tmp_path):
    path = write_lines(tmp_path / "virology.csv", "Question,A,B,C,D,Answer", "病毒,甲,乙,丙,丁,A")
    with pytest.raises(DatasetError, match=r"virology.csv, line 1: expected the header ',Question,A,B,C,D,Answer'"):
        load_cmmlu(path)


def test_cmmlu_wrong_column_count_named(tmp_path):
    path = write_lines(tmp_path / "virology.csv", ",Question,A,B,C,D,Answer", "0,病毒,甲,乙,丙,丁,A", "1,病毒,甲,乙,A")
    with pytest.raises(DatasetError, match=r"virology.csv, line 3: expected 7 columns"):
        load_cmmlu(path)


# ---------------------------------------------------------------- items and the exam template


def test_exam_fields_for_four_and_five_options():
    items = load_medqa(FIXTURE)
    four = item_to_exam_fields(items[0])
    assert four == {
        "stem": items[0].question,
        "option_a": "Antibodies against thyroid peroxidase",
        "option_b": "Antibodies against the TSH receptor",
        "option_c": "Autonomous thyroid nodule",
        "option_d": "Pituitary adenoma",
    }
    five = item_to_exam_fields(items[3])
    assert five["option_e"] == "Cobalamin"
    assert set(five) == {"stem", "option_a", "option_b", "option_c", "option_d", "option_e"}


def test_exam_fields_carry_three_option_pubmedqa_items():
    item = EvalItem(
        id="123",
        question="Does it work?",
        options={"A": "yes", "B": "no", "C": "maybe"},
        gold="A",
        kind="yes_no_maybe",
        context="Background.",
    )
    fields = item_to_exam_fields(item)
    assert fields == {"stem": "Background.\n\nDoes it work?", "option_a": "yes", "option_b": "no", "option_c": "maybe"}


def test_exam_fields_refuse_six_options():
    item = EvalItem(id="7", question="q", options={letter: letter.lower() for letter in "ABCDEF"}, gold="A")
    with pytest.raises(DatasetError, match=r"item 7: the exam template takes 2 to 5 options .* has 6"):
        item_to_exam_fields(item)


def test_eval_item_rejects_gold_outside_options():
    with pytest.raises(ValueError, match="gold 'E' is not one of the options A, B"):
        EvalItem(id="x", question="q", options={"A": "a", "B": "b"}, gold="E")


def test_dataset_names_are_the_cli_choices():
    assert DATASET_NAMES == ("medqa", "pubmedqa", "medmcqa", "mmlu", "cmmlu")
