"""Fixtures of the inference tests: the bundled model loaded once per session, engines per test."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def smollm():
    """SmolLM2-135M-Instruct (fp32, CPU), loaded once for the whole session."""
    from inference.catalog import resolve_model
    from inference.loader import load_generator

    return load_generator(resolve_model("smollm2-135m"), models_dir=settings.KEFU_DATA_DIR / "models",
                          device="cpu", dtype="float32")


@pytest.fixture
def make_engine():
    """Start BatchingEngines over a loaded model; all are stopped when the test ends."""
    from inference.config import EngineConfig
    from inference.engine import BatchingEngine

    engines = []

    def make(loaded, *, start: bool = True, **config):
        engine = BatchingEngine(loaded, EngineConfig(**{"max_batch": 4, "timeout_s": 120.0, **config}))
        engines.append(engine)
        return engine.start() if start else engine

    yield make
    for engine in engines:
        engine.stop()
