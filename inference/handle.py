"""The per-request side of a generator: a handle that yields text and ends with an outcome.

Every backend (the batching engine, the OpenAI-compatible client, vLLM) answers
``submit(request)`` with a :class:`GenerationHandle`. The producer (the engine thread)
calls :meth:`GenerationHandle.emit` and then :meth:`GenerationHandle.finish` once;
the consumer (a task thread) iterates text deltas, may :meth:`cancel`, and reads the
:class:`GenerationOutput` from :meth:`result`. Queue-based, so producer and consumer
live on different threads without sharing anything else.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from inference.outcomes import GenerationDone
from inference.params import GenerationRequest

FINISH_REASONS = ("stop", "length", "cancelled", "timeout", "error")
_END = object()


@dataclass(frozen=True)
class GenerationOutput:
    """What a finished generation produced, with its timings (ms) and, for MoE, expert counts."""

    text: str  # the visible answer: reasoning and stop sequence excluded
    finish_reason: str  # stop | length | cancelled | timeout | error
    reasoning_text: str = ""  # what the model wrote inside <think>…</think>
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_ids: tuple[int, ...] = ()  # generated ids (transformers backend), for tests and debugging
    queue_ms: float = 0.0  # submit → prefill start
    ttft_ms: float = 0.0  # submit → first token
    total_ms: float = 0.0  # submit → finish
    tokens_per_s: float = 0.0  # completion tokens / decode time after the first token
    expert_counts: dict | None = None  # MoE: {"layers": [...], "num_experts": E, "counts": [[...]]}
    error: str = ""  # for finish_reason "error": what went wrong

    def as_done(self) -> GenerationDone:
        """The payload of the stream's ``done`` event (timings rounded)."""
        return GenerationDone(text=self.text, reasoning_text=self.reasoning_text, prompt_tokens=self.prompt_tokens,
                              completion_tokens=self.completion_tokens, queue_ms=round(self.queue_ms, 1),
                              ttft_ms=round(self.ttft_ms, 1), total_ms=round(self.total_ms, 1),
                              tokens_per_s=round(self.tokens_per_s, 2), finish_reason=self.finish_reason,
                              expert_counts=self.expert_counts)


@dataclass
class Timings:
    """Wall-clock marks of one request (time.monotonic seconds)."""

    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    first_token: float | None = None
    finished: float | None = None

    def output_fields(self, completion_tokens: int) -> dict:
        end = self.finished or time.monotonic()
        started = self.started or end
        first = self.first_token or end
        decode_s = end - first
        rate = (completion_tokens - 1) / decode_s if completion_tokens > 1 and decode_s > 0 else 0.0
        return {"queue_ms": (started - self.submitted) * 1000, "ttft_ms": (first - self.submitted) * 1000,
                "total_ms": (end - self.submitted) * 1000, "tokens_per_s": rate}


class GenerationHandle:
    """One request in flight: a thread-safe queue of text deltas, a cancel flag and a final output."""

    def __init__(self, request: GenerationRequest):
        self.request = request
        self.timings = Timings()
        self._deltas: queue.Queue = queue.Queue()
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self._output: GenerationOutput | None = None

    # --- consumer side ---
    def cancel(self) -> None:
        """Ask the producer to stop; it ends the request (finish_reason "cancelled") at its next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stream(self, poll_s: float = 0.1) -> Iterator[str]:
        """Text deltas as they come; yields "" every ``poll_s`` without news so callers can check flags."""
        while True:
            try:
                item = self._deltas.get(timeout=poll_s)
            except queue.Empty:
                yield ""
                continue
            if item is _END:
                return
            yield item

    def __iter__(self) -> Iterator[str]:
        return (delta for delta in self.stream(poll_s=1.0) if delta)

    def result(self, timeout: float | None = None) -> GenerationOutput:
        if not self._done.wait(timeout):
            raise TimeoutError(f"generation {self.request.request_id} did not finish in {timeout}s")
        return self._output

    # --- producer side ---
    def emit(self, text: str) -> None:
        if text and not self._done.is_set():
            self._deltas.put(text)

    def finish(self, output: GenerationOutput) -> None:
        """Record the outcome and end the delta stream (only the first call counts)."""
        if self._done.is_set():
            return
        self._output = output
        self._done.set()
        self._deltas.put(_END)

    def fail(self, message: str, *, finish_reason: str = "error", text: str = "") -> None:
        self.timings.finished = time.monotonic()
        self.finish(GenerationOutput(text=text, finish_reason=finish_reason, error=message,
                                     **self.timings.output_fields(0)))
