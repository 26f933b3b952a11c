"""What a prompt template is: the fields a clinician fills, the prompt text and the example cases.

Plain frozen dataclasses so a loaded template can be shared by every request without copying.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

QUESTION_TYPES: tuple[str, ...] = ("diagnosis", "drug", "exam", "triage")
LANGUAGES: tuple[str, ...] = ("en", "zh")
FIELD_KINDS: tuple[str, ...] = ("text", "longtext", "integer", "number", "choice")

FieldValue = str | int | float


@dataclass(frozen=True)
class Field:
    """One input of a template's form; `label` holds the wording for every UI language."""

    name: str
    label: Mapping[str, str] = dataclass_field(hash=False)
    kind: str
    required: bool
    max_length: int
    choices: tuple[str, ...] | None = None
    choice_labels: Mapping[str, Mapping[str, str]] | None = dataclass_field(default=None, hash=False)
    minimum: int | float | None = None
    maximum: int | float | None = None
    placeholder: str | None = None

    def label_in(self, language: str) -> str:
        """The label in `language`, falling back to English for a language the file does not cover."""
        return self.label.get(language) or self.label["en"]

    def choice_label(self, value: str, language: str) -> str:
        """How a choice reads in `language` (on the form and in the prompt); the value itself when unlabelled."""
        labels = (self.choice_labels or {}).get(value)
        return (labels.get(language) or labels["en"]) if labels else value


@dataclass(frozen=True)
class Example:
    """A ready-made case shown in demos; its `fields` validate against the template as they are."""

    title: str
    fields: Mapping[str, FieldValue] = dataclass_field(hash=False)


@dataclass(frozen=True)
class Template:
    """A question type in one language: form fields, the Jinja2 prompt, answer headings, examples."""

    id: str
    question_type: str
    language: str
    version: str
    title: str
    fields: tuple[Field, ...]
    instructions: str
    sections: tuple[str, ...]
    examples: tuple[Example, ...]

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        known = ", ".join(candidate.name for candidate in self.fields)
        raise KeyError(f"template {self.id} has no field {name!r}; its fields are: {known}")

    def to_public_dict(self) -> dict[str, Any]:
        """The shape the `/templates` API publishes (DESIGN.md); labels in the template's language."""
        public_fields = []
        for item in self.fields:
            entry: dict[str, Any] = {
                "name": item.name,
                "label": item.label_in(self.language),
                "kind": item.kind,
                "required": item.required,
                "max_length": item.max_length,
            }
            if item.choices:
                entry["choices"] = list(item.choices)
                entry["choice_labels"] = {value: item.choice_label(value, self.language) for value in item.choices}
            public_fields.append(entry)
        return {
            "id": self.id,
            "question_type": self.question_type,
            "language": self.language,
            "version": self.version,
            "fields": public_fields,
            "examples": [
                {"title": example.title, "fields": dict(example.fields)} for example in self.examples
            ],
        }
