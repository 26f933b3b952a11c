"""Red flags found in what the clinician typed, whatever the model later says.

Rules are keyword patterns in English and Chinese (both are always checked, whatever the UI language)
plus thresholds on vital signs parsed from free text. Hand-written because no maintained library
covers bilingual clinical phrases; the negation handling is a small NegEx-style window:

- a cue such as "no", "denies", "without", "negative for" (无, 没有, 否认, 未, 不伴, 排除) earlier in the
  same clause cancels a match, unless an affirming word ("but", "reports", "with"; 但, 出现, 伴) lies
  between them; "chest pain: denied/absent/none" and 胸痛（-）/胸痛：无 cancel from behind.
- Limits: it does not parse grammar. A negation that spans a clause break ("No fever. Chest pain.")
  correctly stops at the full stop, but one spanning a comma in Chinese (否认发热，胸痛) is treated as
  not negated, and double negatives or hedges ("cannot exclude chest pain") are read as positive.
  When unsure it errs towards flagging, since a missed red flag costs more than a spare warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class RedFlag:
    """A warning to show beside the answer; `code` is stable, `message` is for a person."""

    code: str
    message: str


@dataclass(frozen=True)
class _Rule:
    code: str
    patterns: tuple[re.Pattern[str], ...]
    message: Mapping[str, str]
    # A rule with companions fires only when one of its patterns and one companion both match.
    companions: tuple[re.Pattern[str], ...] = ()


def _words(*alternatives: str) -> re.Pattern[str]:
    """English phrases matched case-insensitively on word boundaries."""
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


def _chinese(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives))


_CHEST_PAIN = (
    _words(r"chest (?:pain|tightness|pressure|discomfort|heaviness)", r"angina",
           r"(?:retro|sub)sternal (?:pain|pressure)", r"crushing pain"),
    _chinese(r"胸痛", r"胸闷", r"胸口(?:痛|疼)", r"心前区(?:疼|痛|不适)", r"胸骨后[^，,。；;]{0,6}(?:痛|不适)",
             r"胸部压榨"),
)
_STROKE = (
    _words(r"fac(?:e|ial) droop(?:ing)?", r"droop(?:ing|y)? (?:face|mouth)", r"slurred speech",
           r"slurring(?: of speech)?",
           r"(?:one|left|right)[- ]sided weakness", r"unilateral (?:weakness|numbness)", r"hemipar(?:esis|etic)",
           r"hemipleg(?:ia|ic)", r"(?:dys|a)phasi[ac]", r"arm drift",
           r"weakness (?:of|in) (?:the |his |her |their )?(?:left|right) (?:arm|leg|side|face)",
           r"(?:weakness|numbness)[\w ,]{0,40} on one side", r"TIA", r"transient isch(?:a)?emic attack",
           r"acute stroke", r"suspected stroke", r"code stroke",
           r"stroke symptoms", r"BE-?FAST"),
    re.compile(r"\bFAST (?:positive|\+)|\bpositive FAST\b"),  # case-sensitive: "FAST" the stroke screen
    _chinese(r"口角歪斜", r"口眼歪斜", r"嘴角歪斜", r"言语不清", r"口齿不清", r"吐字不清", r"说话含糊", r"偏瘫",
             r"单侧(?:肢体)?无力", r"一侧肢体(?:无力|麻木)", r"[左右]侧肢体(?:无力|麻木|活动不利)", r"半身不遂", r"失语"),
)
_ANAPHYLAXIS = (
    _words(r"anaphyla(?:xis|ctic|ctoid)", r"throat (?:swelling|tightness|closing)", r"swollen (?:throat|tongue)",
           r"(?:tongue|throat|laryngeal) (?:swelling|oedema|edema)", r"angio-?o?edema", r"stridor"),
    _chinese(r"过敏性休克", r"严重过敏反应", r"喉头(?:水肿|发紧|紧缩)", r"喉头?水肿", r"血管性水肿", r"舌头?肿胀"),
)
_WHEEZE = (_words(r"wheez(?:e|es|ing|y)", r"bronchospasm"), _chinese(r"喘息", r"哮鸣", r"喘鸣"))
_EXPOSURE = (
    _words(r"allerg(?:y|ies|ic|ens?)", r"sting", r"stung", r"bee", r"wasp", r"peanuts?", r"nuts?", r"shellfish",
           r"after (?:eating|taking|an? injection|the injection|contrast)", r"contrast", r"penicillin"),
    _chinese(r"过敏", r"蜂蜇", r"蜇伤", r"花生", r"海鲜", r"青霉素", r"造影剂", r"进食后", r"用药后", r"注射后"),
)
_SUICIDALITY = (
    _words(r"suicid(?:e|al|ality)", r"wants? to die", r"wish(?:es)? (?:to be|(?:I|he|she|they) (?:was|were)) dead",
           r"kill (?:myself|himself|herself|themselves)", r"end (?:my|his|her|their) (?:own )?life",
           r"self[- ]harm(?:ing)?", r"cutting (?:myself|himself|herself|themselves)",
           r"(?:intentional|deliberate) overdose", r"overdose (?:on purpose|deliberately|intentionally)",
           r"took an overdose"),
    _chinese(r"自杀", r"轻生", r"想死", r"不想活", r"自残", r"自伤", r"割腕", r"服毒"),
)
_SEPSIS = (
    _words(r"sepsis", r"septic(?: shock)?", r"(?:high|elevated|raised) lactate", r"lactate (?:high|elevated|raised)"),
    _chinese(r"脓毒症", r"脓毒性休克", r"感染性休克", r"败血症", r"乳酸(?:升高|增高|高)", r"发热伴低血压"),
)
_FEVER = (_words(r"fever", r"febrile", r"pyrexi(?:a|al)"), _chinese(r"发热", r"发烧", r"高热", r"高烧"))
_SEPSIS_COMPANIONS = (
    _words(r"hypotensi(?:on|ve)", r"low blood pressure", r"confus(?:ed|ion)", r"altered mental( status)?",
           r"drowsy", r"rigou?rs", r"shaking chills"),
    _chinese(r"低血压", r"血压(?:下降|降低|偏低)", r"意识模糊", r"神志不清", r"意识障碍", r"嗜睡", r"寒战"),
)

# Most urgent first: airway and circulation, then time-critical diagnoses, then safety.
_RULES: tuple[_Rule, ...] = (
    _Rule("anaphylaxis", _ANAPHYLAXIS, {
        "en": "Possible anaphylaxis: give intramuscular adrenaline now if airway, breathing or circulation "
              "is affected.",
        "zh": "可能为严重过敏反应：如累及气道、呼吸或循环，立即肌内注射肾上腺素。",
    }),
    _Rule("anaphylaxis", _WHEEZE, {}, companions=_EXPOSURE),
    _Rule("stroke", _STROKE, {
        "en": "Possible stroke: note the time last known well and arrange emergency stroke assessment "
              "and brain imaging now.",
        "zh": "可能为脑卒中：记录最后正常时间，立即安排急诊卒中评估和头颅影像检查。",
    }),
    _Rule("chest_pain", _CHEST_PAIN, {
        "en": "Chest pain: rule out acute coronary syndrome, PE and aortic dissection; get an ECG within 10 minutes "
              "and consider emergency evaluation.",
        "zh": "胸痛：需排除急性冠脉综合征、肺栓塞和主动脉夹层；10 分钟内完成心电图，并考虑急诊评估。",
    }),
    _Rule("sepsis", _SEPSIS, {
        "en": "Possible sepsis: check lactate and blood cultures, and start antibiotics and fluids without delay.",
        "zh": "可能为脓毒症：查乳酸和血培养，尽快开始抗菌药物和补液。",
    }),
    _Rule("suicidality", _SUICIDALITY, {
        "en": "Suicide or self-harm risk: do not leave the patient alone; arrange an urgent mental health assessment.",
        "zh": "存在自杀或自伤风险：不要让患者独处，尽快安排精神心理紧急评估。",
    }),
)

_VITAL_MESSAGES: dict[str, Mapping[str, str]] = {
    "hypoxia": {
        "en": "SpO2 {value}% is below 90%: give oxygen and assess airway and breathing now.",
        "zh": "血氧饱和度 {value}% 低于 90%：立即给氧并评估气道和呼吸。",
    },
    "hypotension": {
        "en": "Systolic blood pressure {value} mmHg is below 90: assess for shock and start resuscitation.",
        "zh": "收缩压 {value} mmHg 低于 90：评估休克并开始复苏。",
    },
    "tachycardia": {
        "en": "Heart rate {value}/min is above 130: assess for shock, arrhythmia or sepsis now.",
        "zh": "心率 {value} 次/分 高于 130：立即评估休克、心律失常或脓毒症。",
    },
}

# Severity order of every code, rule-based and vital-based together.
_SEVERITY = ("anaphylaxis", "hypoxia", "hypotension", "stroke", "chest_pain", "sepsis", "suicidality", "tachycardia")
_MESSAGES: dict[str, Mapping[str, str]] = {rule.code: rule.message for rule in _RULES if rule.message}
_MESSAGES.update(_VITAL_MESSAGES)

# --- negation ---------------------------------------------------------------------------------------------

_EN_CLAUSE_END = re.compile(r"[.;:!?\n]|\b(?:but|however|although|though|except|yet)\b", re.IGNORECASE)
_EN_AFFIRM = re.compile(
    r"\b(?:reports?|reporting|reported|complains?|complaining|c/o|presents?|presenting|presented|develop(?:s|ed)?|"
    r"with|now|noted|describes?|admits?|endorses?)\b|(?<!not )(?<!n't )\b(?:has|have|had)\b",
    re.IGNORECASE,
)
_EN_PSEUDO = _words(r"not only", r"no (?:relief|improvement|change|response)", r"not (?:relieved|improved|improving|"
                    r"resolved|settled|responding|responded)", r"did not (?:relieve|improve|resolve|settle|help)",
                    r"without (?:relief|improvement|warning|provocation)")
_EN_NEGATION = re.compile(
    r"\b(?:no|nor|never|denie[sd]|deny|denying|without|negative for|neg for|free of|absence of)\b"
    r"|(?:\bnot|n't)(?:\s+\S+){0,2}\s*$",  # "not" only close before the match: "not suicidal", "hasn't had any"
    re.IGNORECASE,
)
_EN_POST_NEGATION = re.compile(r"^\W{0,3}(?:(?:is|was|were)\s+)?(?:denied|absent|none|negative|ruled out|excluded)\b",
                               re.IGNORECASE)

_ZH_CLAUSE_END = re.compile(r"[。；;！!？?\n，,]|但|然而")
# Lookbehinds keep 未诉, 未出现, 没有出现 and 不伴 negative.
_ZH_AFFIRM = re.compile(r"(?<![未无不])(?<!没有)(?:出现|发生)|(?<!不)伴有?|(?<![未否])诉|自觉|感到|突发|突然")
_ZH_PSEUDO = re.compile(r"无明显诱因|无诱因|无明显原因|无力|无法|未缓解|未见好转|未改善|不缓解")
_ZH_NEGATION = re.compile(r"无|没有|否认|未|不伴|排除")
_ZH_POST_NEGATION = re.compile(r"^\s*(?:[(（]\s*[-－]\s*[)）]|[:：]\s*(?:无|否认|阴性)|阴性)")

_WINDOW_WORDS = 6
_WINDOW_CHARS = 10


def _negated(text: str, start: int, end: int) -> bool:
    """Whether the match text[start:end] sits in a negated phrase (English or Chinese rules by script)."""
    is_chinese = bool(re.search(r"[\u4e00-\u9fff]", text[start:end]))
    before = text[:start]
    clause_end = _ZH_CLAUSE_END if is_chinese else _EN_CLAUSE_END
    breaks = list(clause_end.finditer(before))
    if breaks:
        before = before[breaks[-1].end():]
    if is_chinese:
        window = _ZH_PSEUDO.sub(" ", before[-_WINDOW_CHARS:])
        affirm, negation, post = _ZH_AFFIRM, _ZH_NEGATION, _ZH_POST_NEGATION
    else:
        window = " ".join(before.split()[-_WINDOW_WORDS:])
        window = _EN_PSEUDO.sub(" ", window)
        affirm, negation, post = _EN_AFFIRM, _EN_NEGATION, _EN_POST_NEGATION
    affirmations = list(affirm.finditer(window))
    if affirmations:
        window = window[affirmations[-1].end():]
    return bool(negation.search(window)) or bool(post.search(text[end:]))


def _found(patterns: Sequence[re.Pattern[str]], texts: Sequence[str]) -> bool:
    return any(
        not _negated(text, match.start(), match.end())
        for pattern in patterns
        for text in texts
        for match in pattern.finditer(text)
    )


# --- vital signs ------------------------------------------------------------------------------------------

# Between a vital sign's name and its reading: "SpO2 86%", "HR: 138", "BP of 85/50", "血压为 80/50".
_LINK = r"\s*[:=：]?\s*(?:of\s+|is\s+|was\s+|为\s*)?"
_READING = r"(\d{2,3}(?:\.\d+)?)"
_SYSTOLIC = re.compile(r"(?:\bBP|\bblood pressure|血压)" + _LINK + r"(\d{2,3})\s*/\s*\d{2,3}", re.IGNORECASE)
_SYSTOLIC_MMHG = re.compile(r"\b(\d{2,3})\s*/\s*\d{2,3}\s*mm\s*Hg", re.IGNORECASE)
_SATURATION = re.compile(
    r"(?:\bSp\s?O2|\bSaO2|\bO2 sat(?:uration)?s?|\bsats?\b|oxygen saturation|血氧饱和度|血氧|氧饱和度)" + _LINK + _READING,
    re.IGNORECASE,
)
_HEART_RATE = re.compile(r"(?:\bHR|\bheart rate|\bpulse(?: rate)?|心率|脉搏)" + _LINK + _READING, re.IGNORECASE)
_PULSE_P = re.compile(r"\bP\s*[:=]?\s*(\d{2,3})\b")  # case-sensitive: "T 38.9 P 124 R 22"
_TEMPERATURE = re.compile(r"(?:\bT\b|\btemp(?:erature)?\b|体温)" + _LINK + _READING, re.IGNORECASE)


def _readings(patterns: Sequence[re.Pattern[str]], texts: Sequence[str]) -> list[float]:
    return [float(match.group(1)) for pattern in patterns for text in texts for match in pattern.finditer(text)]


def _vital_flags(texts: Sequence[str]) -> dict[str, float]:
    """The worst reading beyond each threshold: SpO2 < 90 %, systolic BP < 90 mmHg, heart rate > 130/min."""
    found: dict[str, float] = {}
    saturations = [value for value in _readings([_SATURATION], texts) if 40 <= value <= 100]
    if saturations and min(saturations) < 90:
        found["hypoxia"] = min(saturations)
    systolics = [value for value in _readings([_SYSTOLIC, _SYSTOLIC_MMHG], texts) if 30 <= value <= 300]
    if systolics and min(systolics) < 90:
        found["hypotension"] = min(systolics)
    rates = [value for value in _readings([_HEART_RATE, _PULSE_P], texts) if 20 <= value <= 300]
    if rates and max(rates) > 130:
        found["tachycardia"] = max(rates)
    return found


def _has_fever_reading(texts: Sequence[str]) -> bool:
    """A temperature of 38 °C (100.4 °F) or more; readings above 50 are taken as Fahrenheit."""
    for value in _readings([_TEMPERATURE], texts):
        celsius = (value - 32) * 5 / 9 if value > 50 else value
        if 38.0 <= celsius <= 45.0:
            return True
    return False


def _rule_fires(rule: _Rule, texts: Sequence[str]) -> bool:
    if not _found(rule.patterns, texts):
        return False
    return not rule.companions or _found(rule.companions, texts)


def detect_red_flags(values: Mapping[str, object], language: str) -> list[RedFlag]:
    """Red flags in the clinician's input, most urgent first, each code once, messages in `language`."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    texts = [value for value in values.values() if isinstance(value, str) and value.strip()]

    codes = {rule.code for rule in _RULES if _rule_fires(rule, texts)}
    vitals = _vital_flags(texts)
    codes.update(vitals)
    fever = _found(_FEVER, texts) or _has_fever_reading(texts)
    if fever and ("hypotension" in vitals or _found(_SEPSIS_COMPANIONS, texts)):
        codes.add("sepsis")

    flags = []
    for code in _SEVERITY:
        if code in codes:
            message = _MESSAGES[code][language]
            if code in vitals:
                message = message.format(value=f"{vitals[code]:g}")
            flags.append(RedFlag(code, message))
    return flags
