"""The chat app's door to the inference app: submit a generation, cancel it, read its events.

Only this module imports :mod:`inference`, so the contract (docs/CONTRACTS.md) is used
in one place: ``generation_submit(messages, params, metadata) -> job id``,
``generation_cancel(job_id)`` and ``open_stream(job_id).read(after, block_ms)``.
"""

from __future__ import annotations

from django.conf import settings


def generation_start(*, messages: list[dict], max_new_tokens: int, message_id: str) -> str:
    """Queue a generation for an assistant message; returns the inference job id."""
    from inference.services import generation_submit

    params = {"temperature": 0.0, "max_new_tokens": min(max_new_tokens, settings.KEFU_MAX_NEW_TOKENS)}
    return generation_submit(messages=messages, params=params, metadata={"chat_message_id": message_id})


def generation_stop(*, job_id: str) -> bool:
    """Cancel a generation nobody reads any more; False when it had already finished."""
    from inference.models import GenerationJob
    from inference.services import generation_cancel

    try:
        return generation_cancel(job_id=job_id)
    except GenerationJob.DoesNotExist:
        return False


def stream_read(job_id: str, *, after: str, block_ms: int) -> list:
    """Events of a job after ``after`` (inference.stream.StreamEvent), waiting up to ``block_ms``."""
    from inference.stream import open_stream

    return open_stream(job_id).read(after, block_ms=block_ms)


def final_event(job_id: str):
    """The job's done/error event: from its token stream, else rebuilt from the stored job; None while running."""
    from inference.models import GenerationJob
    from inference.stream import START, StreamEvent

    cursor = START
    while True:
        events = stream_read(job_id, after=cursor, block_ms=0)
        if not events:
            break
        final = next((event for event in events if event.is_final), None)
        if final is not None:
            return final
        cursor = events[-1].id
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None:
        return StreamEvent(START, "error", {"code": "job_missing", "message": "the generation job is gone"})
    if not job.is_final:
        return None
    if job.status == GenerationJob.Status.DONE:
        return StreamEvent(START, "done", {
            "text": job.text, "prompt_tokens": job.prompt_tokens, "completion_tokens": job.completion_tokens,
            "queue_ms": job.queue_ms, "ttft_ms": job.ttft_ms, "tokens_per_s": job.tokens_per_s,
            "finish_reason": job.finish_reason})
    return StreamEvent(START, "error", {"code": job.error_code or job.status, "message": job.error or job.status})
