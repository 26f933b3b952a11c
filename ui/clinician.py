"""The clinician tab: pick a question type, fill its fields, read the streamed answer.

Draws and wires only: validation, rendering, red flags, inference and storage all live behind
`Services` in the back end.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

import gradio as gr

from backend.consult import ConsultUpdate
from backend.services import Services
from templates import QUESTION_TYPES, Field, Template, get_template
from ui.i18n import question_type_choices, text

ANONYMOUS = "anonymous"
HISTORY_COLUMNS = ["id", "time", "type", "status", "answer"]


def user_name(request: gr.Request | None) -> str:
    return (request.username if request is not None else None) or ANONYMOUS


def _label(field: Field, language: str) -> str:
    if field.required:
        return field.label_in(language)
    return field.label_in(language) + (" (optional)" if language == "en" else "（可选）")


def _choices(field: Field, language: str) -> list[tuple[str, str]]:
    """(shown label, value) pairs: the clinician reads their language, the form keeps the template's codes."""
    return [(field.choice_label(value, language), value) for value in field.choices or ()]


def _relabel(field: Field, language: str) -> dict:
    if field.kind == "choice":
        return gr.update(label=_label(field, language), choices=_choices(field, language))
    return gr.update(label=_label(field, language))


def _field_component(field: Field, language: str) -> gr.components.Component:
    """One input per template field, of the kind the template declares."""
    label = _label(field, language)
    if field.kind == "choice":
        return gr.Dropdown(choices=_choices(field, language), value=None, label=label, allow_custom_value=False)
    if field.kind in ("integer", "number"):
        return gr.Number(
            value=None,
            label=label,
            precision=0 if field.kind == "integer" else None,
            minimum=field.minimum,
            maximum=field.maximum,
        )
    return gr.Textbox(
        label=label,
        lines=4 if field.kind == "longtext" else 1,
        max_lines=12 if field.kind == "longtext" else 1,
        max_length=field.max_length,
        placeholder=field.placeholder or None,
    )


def _flag_banner(update: ConsultUpdate, language: str) -> dict:
    if not update.red_flags:
        return gr.update(value="", visible=False)
    items = "".join(f"<li>{html.escape(message)}</li>" for message in update.red_flags)
    title = html.escape(text(language, "red_flags"))
    return gr.update(value=f'<div class="red-flags"><strong>⚠ {title}</strong><ul>{items}</ul></div>', visible=True)


def _status_line(update: ConsultUpdate, language: str) -> str:
    if update.error:
        prefix = text(language, "incomplete") + ": " if update.status == "incomplete" else ""
        return f"⚠ {prefix}{update.error}"
    return "" if update.done else text(language, "working")


def build_clinician_tab(demo: gr.Blocks, services: Services) -> None:
    """Draw the tab inside `demo`'s context and wire its events."""
    templates_en = {qt: get_template(qt, "en") for qt in QUESTION_TYPES}
    inputs: list[tuple[str, str, gr.components.Component]] = []
    groups: dict[str, gr.Column] = {}

    with gr.Row():
        question_type = gr.Radio(
            question_type_choices("en"), value="diagnosis", label=text("en", "question_type"), elem_id="question-type"
        )
        language = gr.Radio([("English", "en"), ("中文", "zh")], value="en", label=text("en", "language"), elem_id="language")
        example = gr.Dropdown(
            choices=[ex.title for ex in templates_en["diagnosis"].examples], value=None, label=text("en", "example"), elem_id="example-picker")
    engine_status = gr.Markdown(elem_id="engine-status")
    disclaimer = gr.Markdown(text("en", "disclaimer"), elem_id="disclaimer")

    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=360):
            for qt, template in templates_en.items():
                with gr.Column(visible=qt == "diagnosis", elem_id=f"fields-{qt}") as group:
                    for field in template.fields:
                        component = _field_component(field, "en")
                        component.elem_id = f"field-{qt}-{field.name}"
                        inputs.append((qt, field.name, component))
                groups[qt] = group
            with gr.Row():
                preview_button = gr.Button(text("en", "preview"), variant="secondary", elem_id="preview-button")
                submit_button = gr.Button(text("en", "submit"), variant="primary", elem_id="submit-button")
            with gr.Accordion(text("en", "prompt"), open=False, elem_id="prompt-accordion") as prompt_box:
                prompt = gr.Textbox(show_label=False, lines=8, interactive=False, elem_id="prompt-preview")

        with gr.Column(scale=1, min_width=360):
            red_flags = gr.HTML(visible=False, elem_id="red-flag-banner")
            status = gr.Markdown(elem_id="consult-status")
            with gr.Accordion(text("en", "reasoning"), open=False, elem_id="reasoning-accordion") as reasoning_box:
                reasoning = gr.Markdown(elem_id="reasoning")
            answer_title = gr.Markdown(f"### {text('en', 'answer')}")
            answer = gr.Markdown(elem_id="answer", min_height=120)
            consultation_id = gr.State(None)

            with gr.Accordion(text("en", "feedback"), open=True) as feedback_box:
                helpful = gr.Radio(
                    [(text("en", "helpful"), "yes"), (text("en", "not_helpful"), "no")],
                    value=None, show_label=False, elem_id="feedback-helpful",
                )
                comment = gr.Textbox(label=text("en", "comment"), max_length=2000, elem_id="feedback-comment")
                feedback_button = gr.Button(text("en", "send_feedback"), elem_id="feedback-button")
                feedback_status = gr.Markdown(elem_id="feedback-status")

    with gr.Accordion(text("en", "history"), open=False, elem_id="history-accordion") as history_box:
        history = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, elem_id="history")

    field_components = [component for _, _, component in inputs]

    def collect(active_type: str, values: tuple) -> dict[str, object]:
        """The active type's non-empty fields, as the template validator expects them."""
        return {
            name: value
            for (qt, name, _), value in zip(inputs, values)
            if qt == active_type and value is not None and value != ""
        }

    def load_history(request: gr.Request) -> list[list]:
        rows = services.store.list_consultations(user_name(request), limit=50)
        return [
            [row.id, row.created_at.strftime("%Y-%m-%d %H:%M"), row.question_type, row.status, (row.answer or "")[:120]]
            for row in rows
        ]

    def on_load(request: gr.Request):
        return services.engine.status(), load_history(request)

    def on_type_or_language(qt: str, lang: str) -> dict:
        """Show the chosen type's fields and speak the chosen language everywhere on the tab."""
        template: Template = get_template(qt, lang)
        updates = {
            question_type: gr.update(choices=question_type_choices(lang), label=text(lang, "question_type")),
            language: gr.update(label=text(lang, "language")),
            example: gr.update(choices=[ex.title for ex in template.examples], value=None, label=text(lang, "example")),
            preview_button: gr.update(value=text(lang, "preview")),
            submit_button: gr.update(value=text(lang, "submit")),
            prompt_box: gr.update(label=text(lang, "prompt")),
            reasoning_box: gr.update(label=text(lang, "reasoning")),
            answer_title: f"### {text(lang, 'answer')}",
            disclaimer: text(lang, "disclaimer"),
            feedback_box: gr.update(label=text(lang, "feedback")),
            helpful: gr.update(choices=[(text(lang, "helpful"), "yes"), (text(lang, "not_helpful"), "no")]),
            comment: gr.update(label=text(lang, "comment")),
            feedback_button: gr.update(value=text(lang, "send_feedback")),
            history_box: gr.update(label=text(lang, "history")),
        }
        updates |= {group: gr.update(visible=name == qt) for name, group in groups.items()}
        updates |= {
            component: _relabel(template.field(name), lang)
            for q, name, component in inputs
            if q == qt
        }
        return updates

    def on_example(qt: str, lang: str, title: str | None):
        template = get_template(qt, lang)
        chosen = next((ex for ex in template.examples if ex.title == title), None)
        if chosen is None:
            return [gr.update() for _ in inputs]
        return [gr.update(value=chosen.fields.get(name)) if q == qt else gr.update() for q, name, _ in inputs]

    def on_preview(qt: str, lang: str, *values):
        update = services.consultations.preview(qt, lang, collect(qt, values))
        return update.prompt, _flag_banner(update, lang), _status_line(update, lang), gr.update(open=True)

    def on_submit(request: gr.Request, qt: str, lang: str, *values) -> Iterator[tuple]:
        update = ConsultUpdate()
        for update in services.consultations.stream(
            user_name=user_name(request), question_type=qt, language=lang, fields=collect(qt, values)
        ):
            yield (
                update.prompt,
                _flag_banner(update, lang),
                _status_line(update, lang),
                update.reasoning,
                update.answer,
                update.consultation_id,
                gr.update(),
            )
        yield (
            update.prompt, _flag_banner(update, lang), _status_line(update, lang),
            update.reasoning, update.answer, update.consultation_id, load_history(request),
        )

    def on_feedback(cid: int | None, verdict: str | None, note: str, lang: str, request: gr.Request) -> str:
        if cid is None:
            return text(lang, "feedback_nothing")
        if verdict not in ("yes", "no"):
            return text(lang, "feedback_choose")
        try:
            services.store.add_feedback(cid, user_name=user_name(request), helpful=verdict == "yes", comment=note or "")
        except (ValueError, KeyError, PermissionError) as exc:
            return f"⚠ {exc}"
        return text(lang, "feedback_saved")

    language_outputs = {
        question_type, language, example, preview_button, submit_button, prompt_box, reasoning_box, answer_title,
        disclaimer, feedback_box, helpful, comment, feedback_button, history_box, *groups.values(), *field_components,
    }
    for trigger in (question_type.change, language.change):
        trigger(on_type_or_language, [question_type, language], language_outputs, api_visibility="private")
    example.change(on_example, [question_type, language, example], field_components, api_visibility="private")
    preview_button.click(
        on_preview, [question_type, language, *field_components], [prompt, red_flags, status, prompt_box],
        api_visibility="private",
    )
    submit_button.click(
        on_submit,
        [question_type, language, *field_components],
        [prompt, red_flags, status, reasoning, answer, consultation_id, history],
        api_visibility="private",
    )
    feedback_button.click(
        on_feedback, [consultation_id, helpful, comment, language], feedback_status, api_visibility="private"
    )
    demo.load(on_load, None, [engine_status, history], api_visibility="private")
