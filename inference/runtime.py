"""The generator of this process: built once, shared by every request.

In embedded mode the web process calls :func:`start_in_process_engine` from a
background thread at start-up; the inference worker does the same when it starts.
Either way the result is one :class:`~inference.backends.Generator` per process (:func:`build_generator`) — the
continuous-batching engine for the transformers backend, or a client for the openai /
vllm backends. :func:`generator_state` tells ``/readyz`` (and the worker heartbeat)
how far it got; :func:`get_generator` waits for it (the inference task uses it).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from inference.backends import Generator
from inference.backends.openai_backend import OpenAIBackend
from inference.backends.transformers_backend import load_model
from inference.backends.vllm_backend import VllmBackend
from inference.config import EngineConfig, engine_config
from inference.engine import BatchingEngine
from inference.metrics import engine_listener
from kefu import compute

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorState:
    """Where this process's generator is: not_started → loading → ready | failed."""

    status: str
    model: str
    detail: str = ""
    since: float = 0.0


class GeneratorUnavailable(RuntimeError):
    """The generator of this process failed to load or did not become ready in time."""


_lock = threading.Lock()
_ready = threading.Event()
_state = GeneratorState("not_started", "")
_generator = None


def generator_state() -> GeneratorState:
    return _state


def loaded_generator():
    """The loaded model (LoadedModel) of the in-process engine, or None (not ready, or remote backend)."""
    return getattr(_generator, "loaded", None)


def current_generator():
    """The ready generator of this process, or None."""
    return _generator


def start_in_process_engine() -> GeneratorState:
    """Build the configured generator once and start it; later calls return the current state."""
    global _state, _generator
    with _lock:
        if _state.status in ("loading", "ready"):
            return _state
        _state = GeneratorState("loading", settings.KEFU_MODEL, since=time.time())
    try:
        generator = build_configured_generator()
    except Exception as exc:
        log.exception("the generator %s failed to load", settings.KEFU_MODEL)
        _state = GeneratorState("failed", settings.KEFU_MODEL, f"{type(exc).__name__}: {exc}", time.time())
        _ready.set()
        return _state
    _generator = generator
    detail = generator.describe()
    _state = GeneratorState("ready", settings.KEFU_MODEL, detail, time.time())
    _ready.set()
    log.info("generator %s ready (%s)", settings.KEFU_MODEL, detail)
    return _state


def get_generator(timeout_s: float = 600.0):
    """This process's generator, starting it here if nobody has; raises GeneratorUnavailable."""
    if _state.status == "not_started":
        start_in_process_engine()
    if not _ready.wait(timeout_s):
        raise GeneratorUnavailable(f"the generator {settings.KEFU_MODEL} is still loading after {timeout_s:.0f} s")
    if _generator is None:
        raise GeneratorUnavailable(f"the generator {settings.KEFU_MODEL} failed to load: {_state.detail}")
    return _generator


def build_generator(config: EngineConfig, *, models_dir) -> Generator:
    """Load and start the generator ``config`` describes (the model is loaded here, once).

    Importing the backends costs nothing: each imports torch, transformers, httpx or vllm only when it loads.
    """
    if config.backend == "openai":
        return OpenAIBackend(config)
    if config.backend == "vllm":
        return VllmBackend(config)
    engine = BatchingEngine(load_model(config, models_dir=models_dir), config)
    engine.start()
    return engine


def build_configured_generator():
    """Load KEFU_MODEL as the configured backend and start it (the engine thread, for transformers)."""
    config = engine_config()

    def build():
        with compute.MODEL_LOAD_LOCK:  # never beside another model's from_pretrained (see kefu.compute)
            return build_generator(config, models_dir=settings.KEFU_DATA_DIR / "models")

    generator = compute.call(build)  # torch runs on the compute thread only (see kefu.compute)
    attach_metrics(generator)
    return generator


def attach_metrics(generator) -> None:
    """Export the engine's events as Prometheus metrics (a no-op for remote backends)."""
    if hasattr(generator, "listeners"):
        generator.listeners.append(engine_listener)
