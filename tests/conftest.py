"""Shared test set-up: air-gapped like a hospital, fixtures for databases and model servers."""

import os

# Any accidental hub call fails at once, as it would in an air-gapped hospital.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

pytest_plugins = ["tests.fixtures.db", "tests.fixtures.models", "tests.fixtures.app"]
