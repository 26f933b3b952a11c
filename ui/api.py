"""The `/consult` and `/templates` API endpoints, exactly as DESIGN.md fixes them."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from backend.services import Services
from templates import load_templates
from ui.clinician import user_name


def register_api(services: Services) -> None:
    """Add the endpoints to the Blocks being built; they stream through `Client.submit`."""

    def consult(question_type: str, language: str, fields: dict, request: gr.Request) -> Iterator[dict]:
        """Answer one consultation; yields partial results of the same shape as the final one."""
        for update in services.consultations.stream(
            user_name=user_name(request), question_type=question_type, language=language, fields=fields
        ):
            yield update.to_api()

    def templates() -> list[dict]:
        """Every template with its fields and example cases."""
        return [template.to_public_dict() for template in load_templates().values()]

    gr.api(consult, api_name="consult")
    gr.api(templates, api_name="templates")
