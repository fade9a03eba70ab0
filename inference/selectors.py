"""Reads about the inference side that other apps (and /readyz) may ask for."""

from __future__ import annotations

import json

import redis
from django.conf import settings

from inference.models import GenerationJob
from inference.outcomes import GenerationDone, GenerationError, GenerationOutcome
from inference.runtime import generator_state
from inference.stream import START, open_stream
from kefu.status import ComponentStatus

HEARTBEAT_PREFIX = "kefu:inference:heartbeat:"


def generator_status() -> ComponentStatus:
    """Embedded: the in-process generator. Service: a live inference worker's heartbeat."""
    if settings.KEFU_MODE == "embedded":
        state = generator_state()
        return ComponentStatus("generator", state.status == "ready", state.detail or state.status,
                               {"model": settings.KEFU_MODEL, "state": state.status, "where": "in-process"})
    workers = live_workers()
    ready = [worker for worker in workers if worker.get("status") == "ready"]
    detail = f"{len(ready)} inference worker(s) ready" if ready else "no inference worker has reported ready"
    return ComponentStatus("generator", bool(ready), detail,
                           {"model": settings.KEFU_MODEL, "workers": workers, "where": "worker"})


def live_workers() -> list[dict]:
    """Heartbeats written by inference workers in the last few seconds (service mode)."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = sorted(client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100))
        values = client.mget(keys) if keys else []
    except redis.RedisError:
        return []
    return [json.loads(value) for value in values if value]


def generation_outcome(job_id) -> GenerationOutcome | None:
    """How the job ended: its stream's final event, else rebuilt from the stored job; None while it runs.

    The stream expires (``KEFU_STREAM_TTL``) long before the job row, so a late reader still gets the outcome.
    """
    outcome = streamed_outcome(job_id)
    if outcome is not None:
        return outcome
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None:
        return GenerationError("job_missing", "the generation job is gone")
    if not job.is_final:
        return None
    if job.status == GenerationJob.Status.DONE:
        return GenerationDone(text=job.text, prompt_tokens=job.prompt_tokens, completion_tokens=job.completion_tokens,
                              queue_ms=job.queue_ms, ttft_ms=job.ttft_ms, tokens_per_s=job.tokens_per_s,
                              finish_reason=job.finish_reason)
    return GenerationError(job.error_code or job.status, job.error or job.status)


def streamed_outcome(job_id) -> GenerationOutcome | None:
    """The outcome of the job's final stream event, if the stream still holds one (never waits)."""
    stream, cursor = open_stream(job_id), START
    while events := stream.read(cursor, block_ms=0):
        final = next((event for event in events if event.is_final), None)
        if final is not None:
            return final.outcome
        cursor = events[-1].id
    return None
