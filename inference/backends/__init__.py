"""Generator backends: each turns a GenerationRequest into a GenerationHandle.

- ``transformers`` (default): the in-process continuous-batching engine
  (:mod:`inference.engine`) over the model functions of
  :mod:`inference.backends.transformers_backend`.
- ``openai``: any OpenAI-compatible streaming endpoint (:mod:`inference.backends.openai_backend`).
- ``vllm``: vLLM's in-process ``AsyncLLM`` on a GPU (:mod:`inference.backends.vllm_backend`).

All three have ``submit(request) -> GenerationHandle``, ``stop()`` and ``describe() -> str``;
:func:`inference.runtime.build_generator` picks one (the engine sits above the backends, so the
choice lives above both).
"""

from __future__ import annotations

from typing import Protocol

from inference.handle import GenerationHandle
from inference.params import GenerationRequest


class Generator(Protocol):
    def submit(self, request: GenerationRequest) -> GenerationHandle: ...

    def stop(self) -> None: ...

    def describe(self) -> str: ...

