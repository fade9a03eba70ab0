"""The chat app's door to the inference app: submit a generation, cancel it, read its events and outcome.

Only this module imports :mod:`inference` (the SSE relay also reads stream ids and typed outcomes),
so the contract (docs/ARCHITECTURE.md, "Contracts") is used in one place:
``generation_submit(messages, params, metadata) -> job id``, ``generation_cancel(job_id)``,
``generation_stream(job_id).read(after, block_ms)`` and ``generation_outcome(job_id)``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist

from inference.outcomes import GenerationOutcome
from inference.selectors import generation_outcome
from inference.services import generation_cancel, generation_stream, generation_submit
from inference.stream import StreamEvent


def generation_start(*, messages: list[dict], max_new_tokens: int, message_id: str) -> str:
    """Queue a generation for an assistant message; returns the inference job id."""
    params = {"temperature": 0.0, "max_new_tokens": min(max_new_tokens, settings.KEFU_MAX_NEW_TOKENS)}
    return generation_submit(messages=messages, params=params, metadata={"chat_message_id": message_id})


def generation_stop(*, job_id: str) -> bool:
    """Cancel a generation nobody reads any more; False when it had already finished (or is gone)."""
    try:
        return generation_cancel(job_id=job_id)
    except ObjectDoesNotExist:
        return False


def stream_read(job_id: str, *, after: str, block_ms: int) -> list[StreamEvent]:
    """Events of a job after ``after``, waiting up to ``block_ms`` (a dead worker's job fails meanwhile)."""
    return generation_stream(job_id).read(after, block_ms=block_ms)


def final_event(job_id: str) -> GenerationOutcome | None:
    """How the job ended (a ``done`` or ``error`` payload), from its stream or its stored row; None while running."""
    return generation_outcome(job_id)
