"""Loaders for the medical QA benchmarks, all turned into one item shape the harness can render.

Every loader takes a file or the folder that holds it, checks each record, and raises
`DatasetError` naming the file, the line (or record key), what was expected and what was found.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["choice", "yes_no_maybe"]
Language = Literal["en", "zh"]

# PubMedQA is rendered as a three-option exam question, so its gold is a letter like every other item.
YES_NO_MAYBE_OPTIONS: dict[str, str] = {"A": "yes", "B": "no", "C": "maybe"}
DATASET_NAMES = ("medqa", "pubmedqa", "medmcqa", "mmlu", "cmmlu")

_LETTERS = "ABCDEFGHIJ"
_FOUR_LETTERS = ("A", "B", "C", "D")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class DatasetError(ValueError):
    """A data set file is missing, unreadable or not in the expected format."""


@dataclass(frozen=True)
class EvalItem:
    """One benchmark question with its options (letter -> text, in letter order) and gold letter."""

    id: str
    question: str
    options: dict[str, str]
    gold: str
    subject: str | None = None
    kind: Kind = "choice"
    context: str | None = None
    language: Language = "en"

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError(f"item {self.id}: has no options")
        if self.gold not in self.options:
            raise ValueError(f"item {self.id}: gold {self.gold!r} is not one of the options {', '.join(self.options)}")
        if self.kind not in ("choice", "yes_no_maybe"):
            raise ValueError(f"item {self.id}: kind must be 'choice' or 'yes_no_maybe', got {self.kind!r}")
        if self.language not in ("en", "zh"):
            raise ValueError(f"item {self.id}: language must be 'en' or 'zh', got {self.language!r}")


# ---------------------------------------------------------------- reading files


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a whole number of at least 1, got {limit!r}")


def _pick_file(path: Path, dataset: str, preferred: str, pattern: str) -> Path:
    """`path` itself when it is a file; in a folder, `preferred` or else the single match of `pattern`."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise DatasetError(f"{path}: file not found (expected the {dataset} data file or its folder)")
    if (path / preferred).is_file():
        return path / preferred
    matches = sorted(p for p in path.glob(pattern) if p.is_file())
    if len(matches) == 1:
        return matches[0]
    found = ", ".join(p.name for p in matches) or "none"
    raise DatasetError(f"{path}: expected {preferred} (or exactly one {pattern}) for {dataset}, found: {found}")


def _pick_files(path: Path, dataset: str, pattern: str) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise DatasetError(f"{path}: file not found (expected {dataset} CSV files or their folder)")
    files = sorted(p for p in path.glob(pattern) if p.is_file())
    if not files:
        raise DatasetError(f"{path}: expected {dataset} files matching {pattern} in this folder, found none")
    return files


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: expected UTF-8 text, found an undecodable byte at offset {exc.start}") from exc
    if not text.strip():
        raise DatasetError(f"{path}: the file is empty")
    return text


def _json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, record) for each non-blank line; `where` names the file and line for messages."""
    # split("\n"), not splitlines(): JSON text may hold a raw U+2028, which splitlines() breaks on.
    for line_no, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{where}: expected a JSON object, found invalid JSON ({exc.msg}, column {exc.colno})"
            ) from exc
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected a JSON object, found {type(record).__name__}")
        yield where, record


def _json_document(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}, line {exc.lineno}: expected valid JSON, found an error ({exc.msg}, column {exc.colno})"
        ) from exc


def _csv_rows(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Yield (where, row); `where` gives the line a record starts on (quoted fields may span lines)."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    start = 1
    for row in reader:
        where = f"{path}, line {start}"
        start = reader.line_num + 1
        if row:
            yield where, row


def _field(record: dict[str, Any], key: str, where: str) -> str:
    if key not in record:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise DatasetError(f"{where}: expected {key!r} to be text, found {type(value).__name__} {value!r}")
    return value


def _language_of(text: str) -> Language:
    return "zh" if _CJK.search(text) else "en"


# ---------------------------------------------------------------- loaders


def load_medqa(path: Path, *, limit: int | None = None) -> list[EvalItem]:
    """MedQA official JSON lines (US English, or the Chinese files in the same format).

    A folder resolves to test.jsonl, or else its single *test.jsonl (for example the 4-option
    phrases_no_exclude_test.jsonl). meta_info (such as step1) becomes the subject.
    """
    _check_limit(limit)
    file = _pick_file(path, "medqa", "test.jsonl", "*test.jsonl")
    items = []
    for line_no, (where, record) in enumerate(_json_lines(file), start=1):
        question = _field(record, "question", where)
        raw_options = record.get("options")
        if not isinstance(raw_options, dict) or not raw_options:
            raise DatasetError(f"{where}: expected 'options' to be an object of letter -> text, found {raw_options!r}")
        letters = sorted(raw_options)
        if letters != list(_LETTERS[: len(letters)]):
            raise DatasetError(f"{where}: expected option letters A, B, C, ... in sequence, found {', '.join(letters)}")
        options = {letter: _field(raw_options, letter, f"{where}, options") for letter in letters}
        answer_idx = _field(record, "answer_idx", where).strip()
        if answer_idx not in options:
            raise DatasetError(f"{where}: expected answer_idx among {', '.join(options)}, found {answer_idx!r}")
        answer = _field(record, "answer", where)
        if answer.strip() != options[answer_idx].strip():
            raise DatasetError(
                f"{where}: expected 'answer' to equal option {answer_idx} ({options[answer_idx]!r}), found {answer!r}"
            )
        meta_info = record.get("meta_info")
        items.append(
            EvalItem(
                id=f"{file.stem}-{line_no}",
                question=question,
                options=options,
                gold=answer_idx,
                subject=meta_info if isinstance(meta_info, str) and meta_info else None,
                language=_language_of(question),
            )
        )
    return items[:limit]


def load_pubmedqa(
    path: Path, *, limit: int | None = None, split: Literal["test", "all"] | None = None
) -> list[EvalItem]:
    """PubMedQA-L ori_pqal.json; the items keep the file's order.

    split "test" keeps only the PMIDs of test_ground_truth.json beside the file (and checks their
    labels agree), "all" keeps every record; None means "test" when that file is there, else "all".
    """
    _check_limit(limit)
    if split not in (None, "test", "all"):
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    file = _pick_file(path, "pubmedqa", "ori_pqal.json", "ori_pqal*.json")
    records = _json_document(file)
    if not isinstance(records, dict) or not records:
        raise DatasetError(f"{file}: expected a JSON object of PMID -> record, found {type(records).__name__}")

    ground_truth_file = file.parent / "test_ground_truth.json"
    if split is None:
        split = "test" if ground_truth_file.is_file() else "all"
    keep: set[str] | None = None
    if split == "test":
        if not ground_truth_file.is_file():
            raise DatasetError(
                f"{ground_truth_file}: file not found (needed for split='test'; use split='all' to load every record)"
            )
        keep = _pubmedqa_test_pmids(ground_truth_file, records)

    items = []
    for pmid, record in records.items():
        if keep is not None and pmid not in keep:
            continue
        where = f"{file}, record {pmid}"
        if not isinstance(record, dict):
            raise DatasetError(
                f"{where}: expected an object with QUESTION, CONTEXTS, final_decision, found {type(record).__name__}"
            )
        question = _field(record, "QUESTION", where)
        contexts = record.get("CONTEXTS")
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise DatasetError(f"{where}: expected 'CONTEXTS' to be a list of text, found {contexts!r:.80}")
        decision = _field(record, "final_decision", where)
        gold = _yes_no_maybe_letter(decision, where, "final_decision")
        items.append(
            EvalItem(
                id=pmid,
                question=question,
                options=dict(YES_NO_MAYBE_OPTIONS),
                gold=gold,
                kind="yes_no_maybe",
                context="\n\n".join(contexts) or None,
                language=_language_of(question),
            )
        )
    return items[:limit]


def _yes_no_maybe_letter(decision: str, where: str, key: str) -> str:
    for letter, word in YES_NO_MAYBE_OPTIONS.items():
        if decision == word:
            return letter
    raise DatasetError(f"{where}: expected {key!r} to be yes, no or maybe, found {decision!r}")


def _pubmedqa_test_pmids(ground_truth_file: Path, records: dict[str, Any]) -> set[str]:
    truth = _json_document(ground_truth_file)
    if not isinstance(truth, dict) or not truth:
        raise DatasetError(
            f"{ground_truth_file}: expected a JSON object of PMID -> yes/no/maybe, found {type(truth).__name__}"
        )
    for pmid, decision in truth.items():
        where = f"{ground_truth_file}, record {pmid}"
        if pmid not in records:
            raise DatasetError(f"{where}: expected this PMID in the data file beside it, found it missing")
        recorded = records[pmid].get("final_decision") if isinstance(records[pmid], dict) else None
        if decision != recorded:
            raise DatasetError(f"{where}: expected the data file's final_decision {recorded!r}, found {decision!r}")
    return set(truth)


def load_medmcqa(path: Path, *, limit: int | None = None) -> list[EvalItem]:
    """MedMCQA JSON lines (a folder resolves to dev.json); cop is 1-based: 1 = opa = A."""
    _check_limit(limit)
    file = _pick_file(path, "medmcqa", "dev.json", "*dev*.json")
    items = []
    for where, record in _json_lines(file):
        options = {letter: _field(record, f"op{letter.lower()}", where) for letter in _FOUR_LETTERS}
        cop = record.get("cop")
        if isinstance(cop, bool) or not isinstance(cop, int) or not 1 <= cop <= 4:
            raise DatasetError(f"{where}: expected 'cop' numbered 1-4 (1 = opa), found {cop!r}")
        subject = record.get("subject_name")
        items.append(
            EvalItem(
                id=_field(record, "id", where),
                question=_field(record, "question", where),
                options=options,
                gold=_FOUR_LETTERS[cop - 1],
                subject=subject if isinstance(subject, str) and subject else None,
            )
        )
    return items[:limit]


def load_mmlu(path: Path, *, limit: int | None = None) -> list[EvalItem]:
    """MMLU headerless CSV (question, A, B, C, D, answer letter); subject from `<subject>_test.csv`."""
    _check_limit(limit)
    items = []
    for file in _pick_files(path, "mmlu", "*_test.csv"):
        subject = file.stem.removesuffix("_test")
        for index, (where, row) in enumerate(_csv_rows(file)):
            if len(row) != 6:
                raise DatasetError(f"{where}: expected 6 columns (question, A, B, C, D, answer), found {len(row)}")
            items.append(_four_option_item(f"{subject}-{index}", row[0], row[1:5], row[5], subject, "en", where))
    return items[:limit]


_CMMLU_HEADER = ["Question", "A", "B", "C", "D", "Answer"]


def load_cmmlu(path: Path, *, limit: int | None = None) -> list[EvalItem]:
    """CMMLU CSV with header (index, Question, A, B, C, D, Answer), Chinese; subject from the file name.

    A folder with a test/ subfolder loads test/*.csv (never the 5-shot dev files); otherwise its *.csv.
    """
    _check_limit(limit)
    folder = Path(path)
    if (folder / "test").is_dir():
        folder = folder / "test"
    items = []
    for file in _pick_files(folder, "cmmlu", "*.csv"):
        subject = file.stem
        rows = _csv_rows(file)
        where, header = next(rows)
        if len(header) != 7 or [cell.strip() for cell in header[1:]] != _CMMLU_HEADER:
            raise DatasetError(f"{where}: expected the header ',Question,A,B,C,D,Answer', found {','.join(header)!r}")
        for where, row in rows:
            if len(row) != 7:
                raise DatasetError(
                    f"{where}: expected 7 columns (index, Question, A, B, C, D, Answer), found {len(row)}"
                )
            items.append(_four_option_item(f"{subject}-{row[0]}", row[1], row[2:6], row[6], subject, "zh", where))
    return items[:limit]


def _four_option_item(
    item_id: str, question: str, texts: list[str], answer: str, subject: str, language: Language, where: str
) -> EvalItem:
    answer = answer.strip()
    if answer not in _FOUR_LETTERS:
        raise DatasetError(f"{where}: expected the answer letter A, B, C or D, found {answer!r}")
    return EvalItem(
        id=item_id,
        question=question,
        options=dict(zip(_FOUR_LETTERS, texts)),
        gold=answer,
        subject=subject,
        language=language,
    )


_LOADERS: dict[str, Callable[..., list[EvalItem]]] = {
    "medqa": load_medqa,
    "pubmedqa": load_pubmedqa,
    "medmcqa": load_medmcqa,
    "mmlu": load_mmlu,
    "cmmlu": load_cmmlu,
}


def load_dataset(name: str, path: Path, limit: int | None = None) -> list[EvalItem]:
    """Load the data set called `name` (one of DATASET_NAMES) from a file or folder."""
    loader = _LOADERS.get(name)
    if loader is None:
        raise DatasetError(f"unknown data set {name!r}; expected one of: {', '.join(DATASET_NAMES)}")
    return loader(Path(path), limit=limit)


# ---------------------------------------------------------------- exam template fields

_EXAM_MIN_OPTIONS = 2
_EXAM_MAX_OPTIONS = 5


def item_to_exam_fields(item: EvalItem) -> dict[str, str]:
    """The exam template's fields for `item`: stem and option_a.. for its 2 to 5 options.

    Items with a context (an abstract) put it before the question in the stem.
    """
    letters = list(item.options)
    if not _EXAM_MIN_OPTIONS <= len(letters) <= _EXAM_MAX_OPTIONS:
        raise DatasetError(
            f"item {item.id}: the exam template takes 2 to 5 options (option_a..option_e), "
            f"this {item.kind} item has {len(letters)} ({', '.join(letters)})"
        )
    if letters != list(_LETTERS[: len(letters)]):
        raise DatasetError(
            f"item {item.id}: expected option letters A, B, C, ... in sequence, found {', '.join(letters)}"
        )
    stem = f"{item.context}\n\n{item.question}" if item.context else item.question
    fields = {"stem": stem}
    for letter, text in item.options.items():
        fields[f"option_{letter.lower()}"] = text
    return fields
