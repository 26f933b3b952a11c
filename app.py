"""Build and launch the MedLite Gradio app; the Hugging Face Space's entry point.

`MEDLITE_BACKEND_URL` points it at an OpenAI-compatible server (TGI, vLLM, ...); unset, it runs the
embedded engine on `MEDLITE_MODEL`. `GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` choose where it listens.
"""

from __future__ import annotations

import logging
import os

# Gradio reads this at import time: no analytics calls from a hospital's network.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from backend.services import build_services  # noqa: E402
from backend.settings import Settings  # noqa: E402
from ui import CSS, build_app  # noqa: E402


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = build_services(Settings.from_env())
    demo = build_app(services)
    auth = services.login if services.login_required() else None
    demo.launch(auth=auth, auth_message="Sign in with your MedLite account.", css=CSS)


if __name__ == "__main__":
    main()
