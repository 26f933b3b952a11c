"""Red flags in the clinician's input: bilingual keywords, simple negation, vital-sign thresholds."""

from __future__ import annotations

import json
import re

import pytest

from backend.red_flags import RedFlag, detect_red_flags
from tests.fixtures.data import SHARED_DATA, needs_shared_data

CJK = re.compile(r"[\u4e00-\u9fff]")
VIGNETTES = SHARED_DATA / "diagnosis_vignettes" / "avey_vignettes.jsonl"


def codes(text: str, language: str = "en") -> list[str]:
    return [flag.code for flag in detect_red_flags({"history": text}, language)]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Crushing chest pain radiating to the left arm for 2 hours", "chest_pain"),
        ("Central chest tightness on exertion", "chest_pain"),
        ("胸痛2小时", "chest_pain"),
        ("胸骨后压榨性疼痛，伴大汗", "chest_pain"),
        ("无明显诱因出现胸痛", "chest_pain"),
        ("Sudden facial droop and slurred speech", "stroke"),
        ("Right-sided weakness since this morning", "stroke"),
        ("BE-FAST screen positive at triage", "stroke"),
        ("口角歪斜，言语不清1小时", "stroke"),
        ("左侧肢体无力", "stroke"),
        ("Throat swelling and hives after a bee sting", "anaphylaxis"),
        ("Wheezing within minutes of eating peanuts", "anaphylaxis"),
        ("注射青霉素后喉头水肿", "anaphylaxis"),
        ("进食海鲜后出现喘息", "anaphylaxis"),
        ("He says he wants to die and has been self-harming", "suicidality"),
        ("Took a deliberate overdose of paracetamol", "suicidality"),
        ("近一周反复说想死", "suicidality"),
        ("有自残行为", "suicidality"),
        ("Fever with rigors and new confusion", "sepsis"),
        ("Urosepsis suspected; lactate elevated", "sepsis"),
        ("Known sepsis on the ward", "sepsis"),
        ("发热伴低血压", "sepsis"),
        ("高热、寒战2天", "sepsis"),
        ("考虑脓毒症", "sepsis"),
    ],
)
def test_red_flag_is_found_in_either_language(text: str, code: str) -> None:
    assert code in codes(text, "en")
    assert code in codes(text, "zh")


@pytest.mark.parametrize(
    "text",
    [
        "Denies chest pain.",
        "No chest pain or palpitations",
        "No fever, chills or chest pain",
        "He has not had any chest pain",
        "Chest pain: denied",
        "Negative for chest pain and dyspnoea",
        "无胸痛",
        "否认胸痛、胸闷",
        "未诉胸痛",
        "不伴胸痛",
        "胸痛（-）",
        "Denies suicidal ideation or self-harm",
        "Not suicidal",
        "否认自杀念头",
        "No facial droop, no slurred speech",
        "无口角歪斜",
        "No fever; confused after a fall",
        "Wheeze with a cold, known asthma",
        "Afebrile, HR 88, BP 128/76, SpO2 98%",
    ],
)
def test_negated_or_harmless_text_raises_nothing(text: str) -> None:
    assert codes(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "Denies fever but reports chest pain",
        "No fever, with chest pain since this morning",
        "Nitroglycerin did not relieve the chest pain",
        "No fever. Chest pain for 2 hours",
        "无发热，胸痛3小时",
    ],
)
def test_negation_stops_at_the_clause_it_belongs_to(text: str) -> None:
    assert codes(text) == ["chest_pain"]


def test_messages_follow_the_language_asked_for_not_the_input() -> None:
    english = detect_red_flags({"complaint": "胸痛"}, "en")
    chinese = detect_red_flags({"complaint": "chest pain"}, "zh")
    assert english == [RedFlag("chest_pain", english[0].message)]
    assert english[0].message.startswith("Chest pain: rule out acute coronary syndrome, PE and aortic dissection")
    assert chinese[0].code == "chest_pain" and CJK.search(chinese[0].message)


def test_flags_are_ordered_by_severity_and_each_code_appears_once() -> None:
    values = {
        "complaint": "Suicidal, took a deliberate overdose. Chest pain. Chest pain again. Slurred speech.",
        "history": "Anaphylaxis to peanuts last year; throat swelling today",
        "vitals": "BP 84/50, HR 142, SpO2 87% on air, T 38.6",
        "age": 44,
    }
    flags = detect_red_flags(values, "en")
    assert [flag.code for flag in flags] == [
        "anaphylaxis", "hypoxia", "hypotension", "stroke", "chest_pain", "sepsis", "suicidality", "tachycardia",
    ]
    assert all(flag.message.endswith(".") for flag in flags)


@pytest.mark.parametrize(
    ("vitals", "expected"),
    [
        ("BP 82/50, HR 138, SpO2 86% on room air", ["hypoxia", "hypotension", "tachycardia"]),
        ("T 38.9 P 124 R 22 BP 85/50", ["hypotension", "sepsis"]),
        ("Temp 101.3 F, BP 86/52 mmHg", ["hypotension", "sepsis"]),
        ("血压 80/50 mmHg，心率 135 次/分，血氧饱和度 88%", ["hypoxia", "hypotension", "tachycardia"]),
        ("体温 39.1 ℃，血压 85/55 mmHg", ["hypotension", "sepsis"]),
        ("BP 150/90, HR 98, RR 20, SpO2 96% on room air, T 36.8 °C", []),
        ("HR 130, SpO2 90%, BP 90/60", []),
    ],
)
def test_vital_sign_thresholds(vitals: str, expected: list[str]) -> None:
    assert [flag.code for flag in detect_red_flags({"vitals": vitals}, "en")] == expected


def test_vital_messages_quote_the_reading() -> None:
    flags = detect_red_flags({"vitals": "SpO2 84%, later SpO2 88%"}, "zh")
    assert flags == [RedFlag("hypoxia", "血氧饱和度 84% 低于 90%：立即给氧并评估气道和呼吸。")]


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="language must be one of en, zh"):
        detect_red_flags({"complaint": "chest pain"}, "fr")


@needs_shared_data
def test_real_vignettes_absent_findings_do_not_raise_chest_pain() -> None:
    rows = [json.loads(line) for line in VIGNETTES.read_text(encoding="utf-8").splitlines() if line.strip()]
    negated = [row["absent_findings"] for row in rows if re.search(r"\bNo chest pain\b", row["absent_findings"])]
    assert len(negated) > 50
    assert [text for text in negated if "chest_pain" in codes(text)] == []
    presented = [row for row in rows if re.search(r"chest pain", row["chief_complaints"], re.IGNORECASE)]
    assert presented and all("chest_pain" in codes(row["chief_complaints"]) for row in presented)
