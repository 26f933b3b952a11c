"""Inference: one streaming interface over a remote OpenAI-compatible server or an in-process model.

Importing this package loads no model and does not import torch; `create_engine` picks the engine.
"""

from backend.inference.engine import Engine, UnavailableEngine, create_engine
from backend.inference.types import Delta, GenerationParams

__all__ = ["Delta", "Engine", "GenerationParams", "UnavailableEngine", "create_engine"]
