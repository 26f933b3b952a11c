"""Turn a clinician's form values into the user-turn prompt: validate them, then render the template.

Values reach Jinja2 only as data, never as template source, so text such as ``{{ 7*7 }}`` in a
field stays literal. The sandboxed environment is a second guard for the template text itself.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from templates.model import Field, FieldValue, Template

_ENVIRONMENT = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # a plain-text prompt for a language model, not HTML
    trim_blocks=True,
    lstrip_blocks=True,
)

# Python's int() and float() accept "1_000", "nan" and "inf"; a form field should not.
_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "not_mapping": "Fields must be an object mapping field names to values, not {kind}.",
        "unknown": "Unknown field {name}; this form's fields are: {names}.",
        "missing": "{label} ({name}) is required.",
        "not_text": "{label} ({name}) must be text, not {kind}.",
        "not_integer": "{label} ({name}) must be a whole number, not {value}.",
        "not_number": "{label} ({name}) must be a number, not {value}.",
        "too_long": "{label} ({name}) is too long: {length} characters, the limit is {max_length}.",
        "below_minimum": "{label} ({name}) must be at least {minimum}, not {value}.",
        "above_maximum": "{label} ({name}) must be at most {maximum}, not {value}.",
        "bad_choice": "{label} ({name}) must be one of: {choices}; not {value}.",
    },
    "zh": {
        "not_mapping": "字段必须是“字段名: 值”形式的对象，而不是{kind}。",
        "unknown": "未知字段 {name}；此表单的字段为：{names}。",
        "missing": "{label}（{name}）为必填项。",
        "not_text": "{label}（{name}）必须是文本，而不是{kind}。",
        "not_integer": "{label}（{name}）必须是整数，而不是 {value}。",
        "not_number": "{label}（{name}）必须是数字，而不是 {value}。",
        "too_long": "{label}（{name}）过长：{length} 个字符，上限为 {max_length}。",
        "below_minimum": "{label}（{name}）不能小于 {minimum}，当前为 {value}。",
        "above_maximum": "{label}（{name}）不能大于 {maximum}，当前为 {value}。",
        "bad_choice": "{label}（{name}）必须是以下之一：{choices}；当前为 {value}。",
    },
}

_KIND_NAMES: dict[str, dict[type, str]] = {
    "en": {list: "a list", tuple: "a list", dict: "an object", bool: "true/false", type(None): "null"},
    "zh": {list: "列表", tuple: "列表", dict: "对象", bool: "布尔值", type(None): "空值"},
}


@dataclass(frozen=True)
class FieldError:
    """One problem with one field; `field` is empty for a problem with the whole form."""

    field: str
    message: str


class TemplateValidationError(ValueError):
    """Every problem found in a form at once, so the clinician can fix them in one go."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(error.message for error in errors))


def _messages(template: Template) -> dict[str, str]:
    return _MESSAGES.get(template.language, _MESSAGES["en"])


def _kind_name(value: object, language: str) -> str:
    names = _KIND_NAMES.get(language, _KIND_NAMES["en"])
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _quote(value: object, language: str) -> str:
    """A short quoted echo of a bad value; long pastes are cut so the message stays readable."""
    text = str(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"“{text}”" if language == "zh" else repr(text)


def format_value(value: FieldValue) -> str:
    """How a cleaned value reads in the prompt: 70.0 kg reads as 70, 64.5 as 64.5."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _clean_one(template: Template, field: Field, raw: object) -> tuple[FieldValue | None, str | None]:
    """Return (cleaned value, None) or (None, error message); (None, None) means left empty."""
    messages = _messages(template)
    names = {"label": field.label_in(template.language), "name": field.name}
    language = template.language

    if raw is None:
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        key = {"integer": "not_integer", "number": "not_number"}.get(field.kind, "not_text")
        kind = _kind_name(raw, language)
        return None, messages[key].format(**names, kind=kind, value=kind)

    text = raw.replace("\r\n", "\n").strip() if isinstance(raw, str) else format_value(raw)
    if text == "":
        return None, None
    too_long = messages["too_long"].format(**names, length=len(text), max_length=field.max_length)

    if field.kind in ("text", "longtext"):
        return (None, too_long) if len(text) > field.max_length else (text, None)
    if field.kind == "choice":
        if text not in (field.choices or ()):
            choices = ", ".join(field.choices or ())
            return None, messages["bad_choice"].format(**names, choices=choices, value=_quote(text, language))
        return text, None

    value: int | float
    if field.kind == "integer":
        if isinstance(raw, float) and raw.is_integer():
            value = int(raw)
        elif isinstance(raw, int) or _INTEGER_TEXT.fullmatch(text):
            value = int(text)
        else:
            return None, messages["not_integer"].format(**names, value=_quote(raw, language))
    else:
        if not (isinstance(raw, (int, float)) or _NUMBER_TEXT.fullmatch(text)):
            return None, messages["not_number"].format(**names, value=_quote(raw, language))
        value = float(text)
        if not math.isfinite(value):
            return None, messages["not_number"].format(**names, value=_quote(raw, language))
    if len(text) > field.max_length:
        return None, too_long

    if field.minimum is not None and value < field.minimum:
        return None, messages["below_minimum"].format(
            **names, minimum=format_value(field.minimum), value=format_value(value)
        )
    if field.maximum is not None and value > field.maximum:
        return None, messages["above_maximum"].format(
            **names, maximum=format_value(field.maximum), value=format_value(value)
        )
    return value, None


def validate_fields(template: Template, values: Mapping[str, object]) -> dict[str, FieldValue]:
    """Check a form against its template and return the cleaned values, in the template's order.

    Strings are stripped, integers and numbers converted from text, empty optional fields dropped.
    Raises TemplateValidationError listing every problem, in the template's language.
    """
    messages = _messages(template)
    if not isinstance(values, Mapping):
        kind = _kind_name(values, template.language)
        raise TemplateValidationError([FieldError("", messages["not_mapping"].format(kind=kind))])

    errors: list[FieldError] = []
    known = {field.name for field in template.fields}
    for name in values:
        if name not in known:
            names = ", ".join(field.name for field in template.fields)
            errors.append(FieldError(str(name), messages["unknown"].format(name=repr(name), names=names)))

    cleaned: dict[str, FieldValue] = {}
    for field in template.fields:
        value, problem = _clean_one(template, field, values.get(field.name))
        if problem is not None:
            errors.append(FieldError(field.name, problem))
        elif value is not None:
            cleaned[field.name] = value
        elif field.required:
            label = field.label_in(template.language)
            errors.append(FieldError(field.name, messages["missing"].format(label=label, name=field.name)))

    if errors:
        raise TemplateValidationError(errors)
    return cleaned


@functools.lru_cache(maxsize=64)
def compile_instructions(source: str) -> jinja2.Template:
    """Compile a template's prompt text once; raises jinja2.TemplateSyntaxError on broken text."""
    return _ENVIRONMENT.from_string(source)


def render_prompt(template: Template, values: Mapping[str, object]) -> str:
    """Validate `values` and render the template's user-turn prompt from them.

    The prompt sees `fields` (present fields in form order, each with `name`, `label`, `value`),
    `values` (name -> text) and `sections` (the headings the answer must use).
    """
    cleaned = validate_fields(template, values)
    language = template.language
    present = [
        {
            "name": field.name,
            "label": field.label_in(language),
            "value": (
                field.choice_label(str(cleaned[field.name]), language)
                if field.kind == "choice"
                else format_value(cleaned[field.name])
            ),
        }
        for field in template.fields
        if field.name in cleaned
    ]
    prompt = compile_instructions(template.instructions).render(
        fields=present,
        values={item["name"]: item["value"] for item in present},
        sections=list(template.sections),
    )
    return prompt.strip() + "\n"
