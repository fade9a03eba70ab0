"""Writes of the inference app: submit, cancel, and reap generation jobs.

``generation_submit`` validates and stores a request and enqueues ``inference.generate``
once the row is committed (service mode: the ``inference`` queue; embedded mode: a thread
of this process, see ``kefu.background``). ``generation_cancel`` stops a job within one
decoding step. ``generation_reap_stale`` fails jobs whose worker died while they ran, so
nothing stays "generating" forever.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.cancellation import cancel_requested, clear_cancel, request_cancel
from inference.config import engine_config
from inference.handle import GenerationOutput
from inference.models import GenerationJob
from inference.outcomes import GenerationError
from inference.params import (
    GenerationRequest,
    InvalidGenerationRequest,
    SamplingParams,
    chat_messages,
    sampling_params,
)
from inference.runtime import GeneratorUnavailable, get_generator
from inference.selectors import HEARTBEAT_PREFIX
from inference.stream import TokenStream, open_stream, redis_client, write_done, write_error, write_token
from kefu.background import enqueue

log = logging.getLogger(__name__)
Status = GenerationJob.Status

CANCEL_POLL_S = 0.1  # how often a running job looks at its cancel flag
WORKER_LOST = "the inference worker stopped while generating this answer"
NOT_STARTED = "no inference worker started this answer in time"

__all__ = ["InvalidGenerationRequest", "generation_cancel", "generation_reap_stale", "generation_run",
           "generation_stream", "generation_submit"]


class GenerationTimedOut(TimeoutError):
    """A job ran past its time limit plus the grace the engine gets to stop it itself."""


def generation_submit(*, messages, params: SamplingParams | Mapping | None = None,
                      metadata: dict | None = None) -> str:
    """Store a generation request and enqueue it; returns the job id (a UUID string).

    Raises InvalidGenerationRequest (a ValueError) for out-of-range parameters or malformed messages.
    """
    config = engine_config()
    checked = sampling_params(params, max_new_tokens_cap=config.max_new_tokens)
    job = GenerationJob.objects.create(
        messages=list(chat_messages(messages)), temperature=checked.temperature, top_p=checked.top_p,
        max_new_tokens=checked.max_new_tokens, stop=list(checked.stop), seed=checked.seed,
        metadata=dict(metadata or {}), model=config.model,
    )
    job_id = str(job.id)
    # by name: the task module imports this one (the task is a thin wrapper around generation_run)
    transaction.on_commit(lambda: enqueue("inference.generate", job_id))
    return job_id


def generation_cancel(*, job_id) -> bool:
    """Cancel a job: a queued one never runs; a running one stops within one step. False if already final."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise GenerationJob.DoesNotExist(f"no generation job {job_id}")
        if job.is_final:
            return False
        request_cancel(job_id)
        if job.status == Status.QUEUED:
            mark_final(job, Status.CANCELLED, finish_reason="cancelled", error_code="cancelled",
                       error="cancelled before it started")
            cancelled = GenerationError("cancelled", "cancelled before it started")
            transaction.on_commit(lambda: write_error(open_stream(job_id), cancelled))
    return True


def generation_reap_stale(*, now=None) -> list[str]:
    """Fail every job still "running" past the stale limit (its worker died), and every job still "queued"
    that long (its task message was lost: a worker killed holding it, a Redis restart); returns their ids."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=engine_config().stale_after_s)
    stale = GenerationJob.objects.filter(status=Status.RUNNING, started_at__lt=limit).values_list("pk", flat=True)
    reaped = [str(job_id) for job_id in stale if reap(job_id, now=now)]
    lost = GenerationJob.objects.filter(status=Status.QUEUED, created_at__lt=limit).values_list("pk", flat=True)
    # Past the limit a queued job could not finish in time even if it started now: never run it.
    return reaped + [str(job_id) for job_id in lost
                     if reap(job_id, now=now, status=Status.QUEUED, code="not_started", message=NOT_STARTED)]


def generation_reap_if_stale(*, job_id, now=None) -> bool:
    """The on-read check: fail this job if it runs past the stale limit, or its worker's heartbeat is gone."""
    now = now or timezone.now()
    job = GenerationJob.objects.filter(pk=job_id, status=Status.RUNNING).only("started_at", "worker").first()
    if job is None or job.started_at is None:
        return False
    age_s = (now - job.started_at).total_seconds()
    if age_s > engine_config().stale_after_s or worker_gone(job.worker):
        return reap(job_id, now=now)
    return False


def generation_stream(job_id) -> TokenStream:
    """The job's token stream for a reader: an idle blocking read also fails the job when its worker died."""
    return open_stream(job_id, reap=reap_quietly)


def reap_quietly(job_id: str) -> bool:
    """The on-read check for :class:`~inference.stream.ReapingStream`; a database problem never breaks a read."""
    try:
        return generation_reap_if_stale(job_id=job_id)
    except Exception:  # noqa: BLE001 - the read itself must still answer
        log.exception("stale check of generation %s failed", job_id)
        return False


def worker_gone(worker: str) -> bool:
    """Service mode: the worker that claimed the job stopped beating (it died).

    Its heartbeat key outlives it by at most KEFU_INFERENCE_HEARTBEAT_TTL seconds.
    """
    if not settings.REDIS_URL or not worker:
        return False
    return not redis_client(settings.REDIS_URL).exists(HEARTBEAT_PREFIX + worker)


def reap(job_id, *, now, status: str = Status.RUNNING, code: str = "worker_lost", message: str = WORKER_LOST) -> bool:
    changed = GenerationJob.objects.filter(pk=job_id, status=status).update(
        status=Status.FAILED, finish_reason="error", error_code=code, error=message,
        finished_at=now, updated_at=now,
    )
    if changed:
        write_error(open_stream(job_id), GenerationError(code, message))
        log.warning("reaped stale generation %s", job_id)
    return bool(changed)


def generation_run(*, job_id, generator=None) -> str | None:
    """Run one queued job on this process's generator, streaming its events; returns its final status.

    The body of the ``inference.generate`` task. Every way out (done, cancelled, timeout, exception)
    leaves the job in a final status and the stream ending with ``done`` or ``error``.
    """
    config = engine_config()
    worker = worker_name()
    job = generation_claim(job_id=job_id, worker=worker, model=config.model)
    if job is None:
        log.info("generation %s is not queued any more (cancelled, done or claimed); skipped", job_id)
        clear_cancel(job_id)
        return None
    stream = open_stream(job_id)
    try:
        generator = generator or get_generator()
    except GeneratorUnavailable as exc:
        return record_failure(job_id, stream, "generator_unavailable", str(exc))
    handle = None
    try:
        handle = generator.submit(job_request(job))
        follow(handle, stream, job_id, deadline=time.monotonic() + config.timeout_s + min(30.0, config.timeout_s))
        output = handle.result(timeout=30)
    except GenerationTimedOut as exc:
        # The engine stops a request past its limit between steps; this catches a step (a long prefill
        # on a loaded CPU) that overran it by the grace: still a timeout for the customer, not an internal error.
        handle.cancel()
        return record_failure(job_id, stream, "timeout", str(exc), finish_reason="timeout")
    except Exception as exc:  # noqa: BLE001 - whatever happened, the job must end visibly
        if handle is not None:
            handle.cancel()
        log.exception("generation %s failed", job_id)
        return record_failure(job_id, stream, "internal_error", f"{type(exc).__name__}: {exc}")
    finally:
        clear_cancel(job_id)
    return record_outcome(job_id, stream, output)


def job_request(job: GenerationJob) -> GenerationRequest:
    params = SamplingParams(temperature=job.temperature, top_p=job.top_p, max_new_tokens=job.max_new_tokens,
                            stop=tuple(job.stop or ()), seed=job.seed)
    return GenerationRequest(str(job.id), tuple(job.messages), params, submitted_at=job.created_at.timestamp())


def follow(handle, stream, job_id, *, deadline: float) -> None:
    """Copy the handle's text deltas to the stream; cancel it when asked or past the deadline."""
    checked = 0.0
    for delta in handle.stream(poll_s=CANCEL_POLL_S):
        if delta:
            write_token(stream, delta)
        now = time.monotonic()
        if now - checked >= CANCEL_POLL_S:
            checked = now
            if now > deadline:
                raise GenerationTimedOut("the generation exceeded its time limit and the generator did not stop it")
            if not handle.cancelled and cancel_requested(job_id):
                handle.cancel()


def record_outcome(job_id, stream, output: GenerationOutput) -> str:
    """Store the outcome on the job, then end the stream with done or error."""
    fields = dict(text=output.text, reasoning_text=output.reasoning_text, prompt_tokens=output.prompt_tokens,
                  completion_tokens=output.completion_tokens, queue_ms=output.queue_ms, ttft_ms=output.ttft_ms,
                  total_ms=output.total_ms, tokens_per_s=output.tokens_per_s, finish_reason=output.finish_reason,
                  expert_counts=output.expert_counts)
    if output.finish_reason in ("stop", "length"):
        if generation_finish(job_id=job_id, status=Status.DONE, fields=fields):
            write_done(stream, output.as_done())
        return Status.DONE
    status = Status.CANCELLED if output.finish_reason == "cancelled" else Status.FAILED
    code = {"cancelled": "cancelled", "timeout": "timeout"}.get(output.finish_reason, "generation_failed")
    message = output.error or output.finish_reason
    if generation_finish(job_id=job_id, status=status, fields=dict(fields, error_code=code, error=message)):
        write_error(stream, GenerationError(code, message))
    return status


def record_failure(job_id, stream, code: str, message: str, *, finish_reason: str = "error") -> str:
    if generation_finish(job_id=job_id, status=Status.FAILED,
                         fields=dict(finish_reason=finish_reason, error_code=code, error=message)):
        write_error(stream, GenerationError(code, message))
    return Status.FAILED


def worker_name() -> str:
    """hostname:pid — the same id as this process's heartbeat key."""
    return f"{socket.gethostname()}:{os.getpid()}"


def generation_claim(*, job_id, worker: str, model: str) -> GenerationJob | None:
    """queued → running, atomically; None when the job is gone, cancelled or claimed by another worker."""
    now = timezone.now()
    claimed = GenerationJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.RUNNING, worker=worker, model=model, started_at=now, updated_at=now
    )
    return GenerationJob.objects.get(pk=job_id) if claimed else None


def generation_finish(*, job_id, status: str, fields: dict) -> bool:
    """running → final with the outcome; False when the reaper got there first."""
    now = timezone.now()
    return bool(GenerationJob.objects.filter(pk=job_id, status=Status.RUNNING).update(
        status=status, finished_at=now, updated_at=now, **fields
    ))


def mark_final(job: GenerationJob, status: str, **fields) -> None:
    for name, value in fields.items():
        setattr(job, name, value)
    job.status = status
    job.finished_at = timezone.now()
    job.save()
