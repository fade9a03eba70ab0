"""Generator backends: each turns a GenerationRequest into a GenerationHandle.

- ``transformers`` (default): the in-process continuous-batching engine
  (:mod:`inference.engine`) over the model functions of
  :mod:`inference.backends.transformers_backend`.
- ``openai``: any OpenAI-compatible streaming endpoint (:mod:`inference.backends.openai_backend`).
- ``vllm``: vLLM's in-process ``AsyncLLM`` on a GPU (:mod:`inference.backends.vllm_backend`).

All three have ``submit(request) -> GenerationHandle``, ``stop()`` and ``describe() -> str``.
"""

from __future__ import annotations

from typing import Protocol

from inference.config import EngineConfig
from inference.handle import GenerationHandle
from inference.params import GenerationRequest


class Generator(Protocol):
    def submit(self, request: GenerationRequest) -> GenerationHandle: ...

    def stop(self) -> None: ...

    def describe(self) -> str: ...


def build_generator(config: EngineConfig, *, models_dir) -> Generator:
    """Load and start the generator ``config`` describes (the model is loaded here, once)."""
    if config.backend == "openai":
        from inference.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    if config.backend == "vllm":
        from inference.backends.vllm_backend import VllmBackend

        return VllmBackend(config)
    from inference.backends.transformers_backend import load_model
    from inference.engine import BatchingEngine

    engine = BatchingEngine(load_model(config, models_dir=models_dir), config)
    engine.start()
    return engine
