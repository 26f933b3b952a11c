"""Gradio Blocks for MedLite. Draws and wires; the back end does the work."""

from __future__ import annotations

import gradio as gr

from backend.services import Services
from ui.api import register_api
from ui.clinician import build_clinician_tab
from ui.i18n import text

CSS = """
#red-flag-banner .red-flags { background: #fdecea; border: 2px solid #c62828; border-radius: 8px;
  padding: 0.6em 1em; color: #7f1010; }
#disclaimer { font-size: 0.9em; opacity: 0.85; }
"""


def build_app(services: Services) -> gr.Blocks:
    with gr.Blocks(title="MedLite", analytics_enabled=False) as demo:
        gr.Markdown(f"# {text('en', 'title')}")
        with gr.Tab("Clinician", id="clinician"):
            build_clinician_tab(demo, services)
        register_api(services)
    demo.queue(default_concurrency_limit=services.settings.concurrency)
    return demo
