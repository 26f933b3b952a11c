"""Prompt templates for MedLite's question types: the forms clinicians fill and the prompts they become."""

from templates.loader import TemplateFileError, UnknownTemplate, get_template, load_templates
from templates.model import FIELD_KINDS, LANGUAGES, QUESTION_TYPES, Example, Field, Template
from templates.render import FieldError, TemplateValidationError, render_prompt, validate_fields

__all__ = [
    "FIELD_KINDS",
    "LANGUAGES",
    "QUESTION_TYPES",
    "Example",
    "Field",
    "FieldError",
    "Template",
    "TemplateFileError",
    "TemplateValidationError",
    "UnknownTemplate",
    "get_template",
    "load_templates",
    "render_prompt",
    "validate_fields",
]
