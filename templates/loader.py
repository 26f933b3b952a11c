"""Read the template data files (templates/data/<type>.<language>.yaml) and check them strictly.

A template is product content edited by hand, so every mistake is reported with the file and the key
(``fields[2].max_length``) rather than surfacing later as a broken form or prompt.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml

from templates.model import FIELD_KINDS, LANGUAGES, QUESTION_TYPES, Example, Field, Template
from templates.render import TemplateValidationError, compile_instructions, render_prompt

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "data"

_TOP_LEVEL_KEYS = {
    "id", "question_type", "language", "version", "title", "fields", "instructions", "sections", "examples",
}
_FIELD_KEYS = {
    "name", "label", "kind", "required", "max_length", "choices", "choice_labels", "minimum", "maximum", "placeholder",
}
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
_VERSION = re.compile(r"\d+\.\d+\.\d+")
_MINIMUM_EXAMPLES = 2


class TemplateFileError(ValueError):
    """A template data file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class UnknownTemplate(LookupError):
    """No template for the asked question type and language."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML silently keeps the last one, hiding typos."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Checker:
    """Reads values out of one parsed file, raising TemplateFileError that names the file and key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str) -> TemplateFileError:
        return TemplateFileError(self.path, f"{key}: {problem}" if key else problem)

    def mapping(self, value: object, key: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping, not {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(str(name) for name in value if name not in allowed)
            if unknown:
                raise self.fail(key, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        return value

    def required(self, data: Mapping[str, Any], name: str, key: str) -> Any:
        if name not in data:
            raise self.fail(f"{key}.{name}" if key else name, "is missing")
        return data[name]

    def text(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def text_list(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list, not {type(value).__name__}")
        return tuple(self.text(item, f"{key}[{index}]") for index, item in enumerate(value))

    def number(self, value: object, key: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, "must be a number")
        return value


def _parse_field(check: _Checker, raw: object, key: str) -> Field:
    data = check.mapping(raw, key, _FIELD_KEYS)
    name = check.text(check.required(data, "name", key), f"{key}.name")
    if not _FIELD_NAME.fullmatch(name):
        raise check.fail(f"{key}.name", f"{name!r} must be snake_case (lower-case letters, digits, _)")

    label_data = check.mapping(check.required(data, "label", key), f"{key}.label", set(LANGUAGES))
    label = {language: check.text(check.required(label_data, language, f"{key}.label"), f"{key}.label.{language}")
             for language in LANGUAGES}

    kind = check.required(data, "kind", key)
    if kind not in FIELD_KINDS:
        raise check.fail(f"{key}.kind", f"{kind!r} is not one of {', '.join(FIELD_KINDS)}")
    required = check.required(data, "required", key)
    if not isinstance(required, bool):
        raise check.fail(f"{key}.required", "must be true or false")
    max_length = check.required(data, "max_length", key)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise check.fail(f"{key}.max_length", "must be a positive whole number of characters")

    choices = None
    if kind == "choice":
        choices = check.text_list(check.required(data, "choices", key), f"{key}.choices")
        if not choices or len(set(choices)) != len(choices):
            raise check.fail(f"{key}.choices", "must list at least one choice, each once")
        too_long = [choice for choice in choices if len(choice) > max_length]
        if too_long:
            raise check.fail(f"{key}.choices", f"{too_long[0]!r} is longer than max_length {max_length}")
    elif "choices" in data:
        raise check.fail(f"{key}.choices", "only a choice field has choices")
    choice_labels = _parse_choice_labels(check, data, key, choices) if "choice_labels" in data else None

    minimum = maximum = None
    for bound in ("minimum", "maximum"):
        if bound in data:
            if kind not in ("integer", "number"):
                raise check.fail(f"{key}.{bound}", "only integer and number fields have bounds")
            value = check.number(data[bound], f"{key}.{bound}")
            if bound == "minimum":
                minimum = value
            else:
                maximum = value
    if minimum is not None and maximum is not None and minimum > maximum:
        raise check.fail(f"{key}.minimum", f"{minimum} is above maximum {maximum}")

    placeholder = check.text(data["placeholder"], f"{key}.placeholder") if "placeholder" in data else None
    return Field(name, label, kind, required, max_length, choices, choice_labels, minimum, maximum, placeholder)


def _parse_choice_labels(
    check: _Checker, data: Mapping[str, Any], key: str, choices: tuple[str, ...] | None
) -> dict[str, dict[str, str]]:
    """Every choice's wording in every language, e.g. `male: {en: male, zh: 男}`."""
    where = f"{key}.choice_labels"
    if choices is None:
        raise check.fail(where, "only a choice field has choice labels")
    raw = check.mapping(data["choice_labels"], where, set(choices))
    missing = [choice for choice in choices if choice not in raw]
    if missing:
        raise check.fail(where, f"{missing[0]!r} has no label; label every choice or none")
    labels: dict[str, dict[str, str]] = {}
    for choice in choices:
        by_language = check.mapping(raw[choice], f"{where}.{choice}", set(LANGUAGES))
        labels[choice] = {
            language: check.text(check.required(by_language, language, f"{where}.{choice}"), f"{where}.{choice}.{language}")
            for language in LANGUAGES
        }
    return labels


def _parse_template(path: Path) -> Template:
    check = _Checker(path)
    try:
        with path.open(encoding="utf-8") as stream:
            raw = yaml.load(stream, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateFileError(path, f"cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TemplateFileError(path, f"is not valid YAML: {exc}") from exc

    data = check.mapping(raw, "", _TOP_LEVEL_KEYS)
    question_type = check.required(data, "question_type", "")
    if question_type not in QUESTION_TYPES:
        raise check.fail("question_type", f"{question_type!r} is not one of {', '.join(QUESTION_TYPES)}")
    language = check.required(data, "language", "")
    if language not in LANGUAGES:
        raise check.fail("language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
    expected_name = f"{question_type}.{language}.yaml"
    if path.name != expected_name:
        raise check.fail("", f"declares {question_type}/{language}, so the file must be named {expected_name}")
    template_id = check.text(check.required(data, "id", ""), "id")
    if template_id != f"{question_type}-{language}":
        raise check.fail("id", f"{template_id!r} must be {question_type}-{language}")
    version = check.required(data, "version", "")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise check.fail("version", f"{version!r} must be a quoted version such as \"1.0.0\"")
    title = check.text(check.required(data, "title", ""), "title")

    raw_fields = check.required(data, "fields", "")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise check.fail("fields", "must be a non-empty list")
    fields = tuple(_parse_field(check, item, f"fields[{index}]") for index, item in enumerate(raw_fields))
    names = [field.name for field in fields]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise check.fail("fields", f"duplicate field name(s): {', '.join(duplicates)}")

    instructions = check.text(check.required(data, "instructions", ""), "instructions")
    try:
        compile_instructions(instructions)
    except jinja2.TemplateSyntaxError as exc:
        raise check.fail("instructions", f"Jinja2 syntax error on line {exc.lineno}: {exc.message}") from exc
    sections = check.text_list(check.required(data, "sections", ""), "sections")

    template = Template(template_id, question_type, language, version, title, fields, instructions, sections, ())
    raw_examples = check.required(data, "examples", "")
    if not isinstance(raw_examples, list) or len(raw_examples) < _MINIMUM_EXAMPLES:
        raise check.fail("examples", f"must list at least {_MINIMUM_EXAMPLES} example cases")
    examples = tuple(_parse_example(check, template, item, f"examples[{index}]")
                     for index, item in enumerate(raw_examples))
    return Template(template_id, question_type, language, version, title, fields, instructions, sections, examples)


def _parse_example(check: _Checker, template: Template, raw: object, key: str) -> Example:
    """An example must validate as it is and render, because the UI and API offer it unchanged."""
    data = check.mapping(raw, key, {"title", "fields"})
    title = check.text(check.required(data, "title", key), f"{key}.title")
    values = dict(check.mapping(check.required(data, "fields", key), f"{key}.fields"))
    try:
        render_prompt(template, values)
    except TemplateValidationError as exc:
        raise check.fail(key, f"({title}) does not validate: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise check.fail("instructions", f"fails to render example {title!r}: {exc}") from exc
    return Example(title, values)


def _check_languages_agree(directory: Path, templates: Mapping[tuple[str, str], Template]) -> None:
    """Field names and rules are an API contract shared by a type's languages; only wording may differ."""

    def shape(template: Template) -> list[tuple[object, ...]]:
        return [
            (f.name, f.kind, f.required, f.max_length, f.choices, f.choice_labels, f.minimum, f.maximum)
            for f in template.fields
        ]

    for question_type in QUESTION_TYPES:
        reference = templates[(question_type, LANGUAGES[0])]
        for language in LANGUAGES[1:]:
            other = templates[(question_type, language)]
            if shape(other) != shape(reference):
                differing = next(
                    (a[0] for a, b in zip(shape(other), shape(reference)) if a != b),
                    "the number of fields",
                )
                raise TemplateFileError(
                    directory / f"{question_type}.{language}.yaml",
                    f"fields must match {question_type}.{reference.language}.yaml in names, kinds and limits; "
                    f"they differ at {differing}",
                )


def _load_directory(directory: Path) -> dict[tuple[str, str], Template]:
    if not directory.is_dir():
        raise TemplateFileError(directory, "template directory does not exist")
    templates: dict[tuple[str, str], Template] = {}
    for path in sorted(directory.glob("*.yaml")):
        template = _parse_template(path)
        templates[(template.question_type, template.language)] = template
    missing = [f"{question_type}.{language}.yaml" for question_type in QUESTION_TYPES for language in LANGUAGES
               if (question_type, language) not in templates]
    if missing:
        raise TemplateFileError(directory, f"missing template file(s): {', '.join(missing)}")
    _check_languages_agree(directory, templates)
    return templates


@functools.cache
def _load_default() -> dict[tuple[str, str], Template]:
    return _load_directory(DEFAULT_DIRECTORY)


def load_templates(directory: Path | None = None) -> dict[tuple[str, str], Template]:
    """Every template keyed by (question_type, language); the shipped set is read once per process."""
    if directory is None:
        return dict(_load_default())
    return _load_directory(Path(directory))


def get_template(question_type: str, language: str) -> Template:
    """The shipped template for a question type and language, or UnknownTemplate saying what exists."""
    try:
        return _load_default()[(question_type, language)]
    except KeyError:
        raise UnknownTemplate(
            f"no template for question type {question_type!r} in language {language!r}; "
            f"question types: {', '.join(QUESTION_TYPES)}; languages: {', '.join(LANGUAGES)}"
        ) from None
