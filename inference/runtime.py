"""The generator of this process: loaded once, shared by every request.

In embedded mode the web process calls :func:`start_in_process_engine` from a
background thread at start-up; the inference worker does the same when it starts.
:func:`generator_state` tells ``/readyz`` (and the worker heartbeat) how far it got.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorState:
    """Where this process's generator is: not_started → loading → ready | failed."""

    status: str
    model: str
    detail: str = ""
    since: float = 0.0


_lock = threading.Lock()
_state = GeneratorState("not_started", "")
_loaded = None


def generator_state() -> GeneratorState:
    return _state


def loaded_generator():
    """The loaded model of this process, or None while it is not ready."""
    return _loaded


def start_in_process_engine() -> GeneratorState:
    """Load the configured generator once; later calls return the current state."""
    global _state, _loaded
    with _lock:
        if _state.status in ("loading", "ready"):
            return _state
        _state = GeneratorState("loading", settings.KEFU_MODEL, since=time.time())
    try:
        loaded = load_configured_generator()
    except Exception as exc:
        log.exception("the generator %s failed to load", settings.KEFU_MODEL)
        _state = GeneratorState("failed", settings.KEFU_MODEL, f"{type(exc).__name__}: {exc}", time.time())
        return _state
    _loaded = loaded
    detail = f"{loaded.device}, {loaded.dtype}" if loaded is not None else "remote endpoint"
    _state = GeneratorState("ready", settings.KEFU_MODEL, detail, time.time())
    log.info("generator %s ready (%s)", settings.KEFU_MODEL, detail)
    return _state


def load_configured_generator():
    """Load KEFU_MODEL with the configured device and dtype (None for a remote backend)."""
    from inference.catalog import resolve_model
    from inference.loader import load_generator

    spec = resolve_model(settings.KEFU_MODEL, settings.KEFU_MODEL_BACKEND)
    if spec.kind == "remote":
        return None
    return load_generator(spec, models_dir=settings.KEFU_DATA_DIR / "models",
                          device=settings.KEFU_DEVICE, dtype=settings.KEFU_DTYPE)
