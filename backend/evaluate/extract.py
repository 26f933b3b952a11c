"""Read the chosen answer out of a model's output, never out of its reasoning.

R1-style models think first (`<think> ... </think>`, where the opening tag may sit in the prompt) and
answer after. Only the text after the last `</think>` is read; an output whose thinking never closed
has no answer. Within the answer, the last explicit statement ("The answer is C", "答案：C",
`\\boxed{C}`) wins; failing that a line holding only a letter, then the text of exactly one option.
Hand-written because no maintained library reads free-form exam answers; each rule is a regular
expression below so the table of phrasings in the tests documents them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from backend.evaluate.datasets import EvalItem

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# A letter, optionally bracketed; never the start of a word ("Cancer", "C-reactive", "A's").
_LETTER = r"(?P<open>[(\[{]\s*)?(?P<letter>[A-Za-z])(?(open)\s*[)\]}])(?![A-Za-z0-9'’-])"


def _pattern(regex: str, *, ignore_case: bool = True) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE if ignore_case else 0)


# (pattern, whether an unbracketed lowercase letter counts); the last match in the answer wins.
_EXPLICIT_LETTER: list[tuple[re.Pattern[str], bool]] = [
    # "The answer is C", "Answer: (C)", "Final answer: C. text", "correct answer: C", "The answer is option C"
    (
        _pattern(
            r"\banswer(?:\s+to\s+(?:this|the)\s+question)?\s*"
            r"(?:(?:is|would\s+be|should\s+be|will\s+be|must\s+be)\s*:?|[:=\-–—])\s*(?:option\s+|choice\s+)?" + _LETTER
        ),
        False,
    ),
    # "the correct option is C", "Best choice: C"
    (
        _pattern(
            r"\b(?:correct|right|best|final|most\s+appropriate|most\s+likely)\s+(?:option|choice)\s*"
            r"(?:is|would\s+be|should\s+be|:)\s*:?\s*(?:option\s+)?" + _LETTER
        ),
        False,
    ),
    # "(C) is correct", "Option C is the correct answer", "So, C is the best" (not "Vitamin D is correct")
    (
        _pattern(
            r"(?:^|[\n.:;,!?]\s*|\b(?:option|choice)\s+)" + _LETTER + r"\s+is\s+(?:the\s+)?(?:correct|right|best)\b"
        ),
        False,
    ),
    # "I would choose C", "I'd go with (C)"
    (
        _pattern(r"\bI(?:\s+would|'d|’d)?\s+(?:choose|pick|select|go\s+with)\s+(?:option\s+|choice\s+)?" + _LETTER),
        False,
    ),
    # \boxed{C}, \boxed{\text{C}}, \boxed{(C)}
    (_pattern(r"\\boxed\s*\{\s*(?:\\(?:text|textbf|mathrm|mathbf)\s*\{\s*)?" + _LETTER, ignore_case=False), True),
    # 答案：C, 答案是C, 正确答案为 C, 答案：选C
    (_pattern(r"答案?\s*(?:应该是|应该为|应是|应为|是|为|:)?\s*:?\s*(?:选项|选)?\s*" + _LETTER), False),
    # 选C, 故选C, 应选择 C
    (_pattern(r"选(?:择)?\s*" + _LETTER), False),
    # C项正确, C选项正确, C正确 (not C不正确)
    (_pattern(r"(?<![A-Za-z0-9])" + _LETTER + r"\s*(?:选项|项)?\s*(?:是)?正确"), False),
    # 正确选项是C, 最佳选项：C
    (_pattern(r"(?:正确|最佳|最合适的?)选项\s*(?:是|为|应为|:)?\s*:?\s*" + _LETTER), False),
]

# A whole line naming a letter: "C", "C.", "(C)", "Option C", "选项C", "C. <that option's text>".
_LETTER_LINE = re.compile(
    r"(?:(?:option|choice|选项)\s*)?(?P<open>[(\[]\s*)?(?P<letter>[A-Za-z])(?(open)\s*[)\]])"
    r"(?:\s*[.:),;、]\s*|\s+|$)(?P<rest>.*)",
    re.IGNORECASE,
)
# After a lowercase letter an explicit statement must end, so "the answer is a bit ..." is no answer.
_ENDS_STATEMENT = re.compile(r"\s*(?:$|[.,;:!?)\]。，；！])")

_YES_NO_MAYBE_EN = {"yes": "yes", "no": "no", "maybe": "maybe"}
_YES_NO_MAYBE_ZH = {
    "是": "yes", "是的": "yes", "肯定": "yes",
    "否": "no", "不是": "no", "否定": "no",
    "可能": "maybe", "不确定": "maybe",
}
_ZH_WORDS = "|".join(sorted(_YES_NO_MAYBE_ZH, key=len, reverse=True))
_WORD_END = r"(?=\s*(?:$|[.,;:!?)\]。，；！、的]))"
_EXPLICIT_YES_NO_MAYBE = [
    # "The answer is yes", "Answer: No.", "Final decision: maybe"
    re.compile(
        r"\b(?:answer|decision|conclusion)(?:\s+to\s+(?:this|the)\s+question)?\s*"
        r"(?:(?:is|would\s+be|should\s+be|will\s+be)\s*:?|[:=])\s*[\"'“(\[]?(?P<word>yes|no|maybe)\b",
        re.IGNORECASE,
    ),
    # 答案：是, 答案是否定的, 答案为可能
    re.compile(r"答案?\s*(?:应该是|应为|是|为|:)?\s*:?\s*(?P<word>" + _ZH_WORDS + ")" + _WORD_END),
]
_LEADING_YES_NO_MAYBE = re.compile(r"(?P<word>yes|no|maybe|" + _ZH_WORDS + r")(?:\s*$|\s*[.,;:!，。；！])", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def final_answer_text(output: str) -> str | None:
    """The text after the reasoning: after the last `</think>`; None while a `<think>` is still open."""
    if THINK_CLOSE in output:
        output = output.rsplit(THINK_CLOSE, 1)[1]
    if THINK_OPEN in output:
        return None
    return output


def _clean(text: str) -> str:
    """Unify widths (：→:, （C）→(C), Ｃ→C) and drop markdown emphasis and tags such as <answer>."""
    text = unicodedata.normalize("NFKC", text).translate(str.maketrans({"【": "[", "】": "]", "`": None, "*": None}))
    return re.sub(r"</?[A-Za-z_]+>", " ", text)


def _norm(text: str) -> str:
    """Case- and punctuation-blind form for comparing with option texts."""
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


def _contains(haystack: str, needle: str) -> bool:
    if _CJK.search(needle):  # Chinese has no spaces between words: plain substring
        return needle.replace(" ", "") in haystack.replace(" ", "")
    return f" {needle} " in f" {haystack} "


def _explicit_letter(text: str, options: Mapping[str, str]) -> str | None:
    found: list[tuple[int, str]] = []
    for pattern, any_lowercase in _EXPLICIT_LETTER:
        for match in pattern.finditer(text):
            letter = match.group("letter")
            if letter.upper() not in options:
                continue
            lowercase_ok = any_lowercase or match.group("open") is not None or _ENDS_STATEMENT.match(text, match.end())
            if letter.isupper() or lowercase_ok:
                found.append((match.start("letter"), letter.upper()))
    return max(found)[1] if found else None


def _letter_lines(text: str, options: Mapping[str, str]) -> str | None:
    """A letter stated alone on its lines; None when lines name different letters (a listed option set)."""
    letters = set()
    for line in text.splitlines():
        line = line.strip().strip("#>-•").strip()
        match = _LETTER_LINE.fullmatch(line)
        if not match:
            continue
        letter = match.group("letter")
        if letter.upper() not in options or (letter.islower() and match.group("open") is None):
            continue
        rest = _norm(match.group("rest"))
        if rest and not _starts_with_option(rest, _norm(options[letter.upper()])):
            continue
        letters.add(letter.upper())
    return letters.pop() if len(letters) == 1 else None


def _starts_with_option(rest: str, option: str) -> bool:
    if not option:
        return False
    if _CJK.search(option):
        return rest.replace(" ", "").startswith(option.replace(" ", ""))
    return rest == option or rest.startswith(option + " ")


def _option_text(text: str, options: Mapping[str, str]) -> str | None:
    """The one option whose text the answer is, or uniquely contains (longest wins over its own parts)."""
    answer = _norm(text)
    normalized = {letter: _norm(option) for letter, option in options.items() if _norm(option)}
    exact = [letter for letter, option in normalized.items() if option == answer]
    if len(exact) == 1:
        return exact[0]
    contained = {letter: option for letter, option in normalized.items() if _contains(answer, option)}
    maximal = [
        letter
        for letter, option in contained.items()
        if not any(other != option and _contains(other, option) for other in contained.values())
    ]
    return maximal[0] if len(maximal) == 1 else None


def _cleaned_final(output: str) -> str | None:
    final = final_answer_text(output)
    return None if final is None else _clean(final)


def _stated_letter(final: str, options: Mapping[str, str]) -> str | None:
    return _explicit_letter(final, options) or _letter_lines(final, options)


def extract_choice(output: str, options: Mapping[str, str]) -> str | None:
    """The option letter the output's final answer chose, or None when it cannot be read."""
    final = _cleaned_final(output)
    if final is None:
        return None
    return _stated_letter(final, options) or _option_text(final, options)


def extract_yes_no_maybe(output: str) -> str | None:
    """'yes', 'no' or 'maybe' from the final answer (English or 是/否/可能), or None."""
    final = _cleaned_final(output)
    if final is None:
        return None
    found: list[tuple[int, str]] = []
    for pattern in _EXPLICIT_YES_NO_MAYBE:
        found += [(m.start("word"), _word_meaning(m.group("word"))) for m in pattern.finditer(final)]
    if found:
        return max(found)[1]
    alone_on_a_line = {_word_meaning(word) for word in map(_line_word, final.splitlines()) if word}
    if len(alone_on_a_line) == 1:
        return alone_on_a_line.pop()
    leading = _LEADING_YES_NO_MAYBE.match(final.strip())
    return _word_meaning(leading.group("word")) if leading else None


def _line_word(line: str) -> str | None:
    """The yes/no/maybe word when it is all a line says ("**Yes.**", "是。"), else None."""
    word = re.sub(r"[\s#>\-•.,;:!?。，；！\"'“”()\[\]]+", "", line)
    return word if word.casefold() in _YES_NO_MAYBE_EN or word in _YES_NO_MAYBE_ZH else None


def _word_meaning(word: str) -> str:
    return _YES_NO_MAYBE_EN.get(word.casefold()) or _YES_NO_MAYBE_ZH[word]


def extract_answer(output: str, item: EvalItem) -> str | None:
    """The letter the output chose for `item`; for yes/no/maybe items the word maps to its letter."""
    if item.kind == "yes_no_maybe":
        word = extract_yes_no_maybe(output)
        by_word = {text: letter for letter, text in item.options.items()}
        if word in by_word:
            return by_word[word]
        # A yes/no/maybe word in free text is too ambiguous ("no evidence") to read as option text.
        final = _cleaned_final(output)
        return None if final is None else _stated_letter(final, item.options)
    return extract_choice(output, item.options)
