"""How a generation ended: the payloads of a job's ``done`` and ``error`` events, as values.

The inference worker writes one of them at the end of a job's token stream; the chat app reads
it back (from the stream, or rebuilt from the stored job by
:func:`inference.selectors.generation_outcome`) to finish the assistant message. Both sides use
these dataclasses, so the payload's keys are spelled here only. On the wire (a Redis Stream entry
or the in-memory stream) a payload is the JSON object of :meth:`data`.

An outcome reads like the stream event it travels in — ``kind`` and ``data`` — so code written
against a :class:`~inference.stream.StreamEvent` takes either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

DONE, ERROR = "done", "error"
FAILED_FINISH_REASONS = ("error", "cancelled", "timeout")  # a done event with these carries no answer


@dataclass(frozen=True)
class GenerationDone:
    """The ``done`` payload: the answer, its token counts and timings (ms), and MoE expert counts."""

    kind: ClassVar[str] = DONE

    text: str = ""  # the visible answer: reasoning and stop sequence excluded
    finish_reason: str = "stop"  # stop | length
    reasoning_text: str = ""  # what the model wrote inside <think>…</think>
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    queue_ms: float | None = None  # submit → prefill start
    ttft_ms: float | None = None  # submit → first token
    total_ms: float | None = None  # submit → finish
    tokens_per_s: float | None = None  # completion tokens / decode time after the first token
    expert_counts: dict | None = None  # MoE: {"layers": [...], "num_experts": E, "counts": [[...]]}

    @property
    def data(self) -> dict:
        return asdict(self)

    @property
    def answered(self) -> bool:
        return self.finish_reason not in FAILED_FINISH_REASONS

    @classmethod
    def from_data(cls, data: Mapping) -> GenerationDone:
        return cls(**known_fields(cls, data))


@dataclass(frozen=True)
class GenerationError:
    """The ``error`` payload: a short machine code (``timeout``, ``worker_lost``, …) and a message."""

    kind: ClassVar[str] = ERROR

    code: str
    message: str = ""

    @property
    def data(self) -> dict:
        return asdict(self)

    @classmethod
    def from_data(cls, data: Mapping) -> GenerationError:
        return cls(**{"code": "generation_failed", **known_fields(cls, data)})


GenerationOutcome = GenerationDone | GenerationError


def known_fields(cls, data: Mapping) -> dict:
    """The entries of ``data`` that are fields of ``cls`` (a newer writer may add keys)."""
    names = {field.name for field in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def outcome_from(kind: str, data: Mapping) -> GenerationOutcome | None:
    """The outcome a final event carries; None for a ``token`` event."""
    if kind == DONE:
        return GenerationDone.from_data(data)
    if kind == ERROR:
        return GenerationError.from_data(data)
    return None
