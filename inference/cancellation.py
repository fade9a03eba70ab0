"""Cancellation flags: how "stop this generation" reaches the process decoding it.

The web side (client went away, staff pressed stop) calls
``inference.services.generation_cancel``; the task running the job polls
:func:`cancel_requested` while it streams and cancels its engine handle, and the
engine drops the sequence at its next step. Service mode keeps the flag in Redis (the
job may run on another machine); embedded mode in a set of this process.
"""

from __future__ import annotations

import threading

from django.conf import settings

from inference.stream import redis_client

KEY_PREFIX = "kefu:cancel:"
FLAG_TTL_S = 3600

_local: set[str] = set()
_local_lock = threading.Lock()


def request_cancel(job_id) -> None:
    """Raise the job's cancel flag (idempotent)."""
    if settings.REDIS_URL:
        redis_client(settings.REDIS_URL).set(KEY_PREFIX + str(job_id), "1", ex=FLAG_TTL_S)
    else:
        with _local_lock:
            _local.add(str(job_id))


def cancel_requested(job_id) -> bool:
    if settings.REDIS_URL:
        return bool(redis_client(settings.REDIS_URL).exists(KEY_PREFIX + str(job_id)))
    with _local_lock:
        return str(job_id) in _local


def clear_cancel(job_id) -> None:
    if settings.REDIS_URL:
        redis_client(settings.REDIS_URL).delete(KEY_PREFIX + str(job_id))
    else:
        with _local_lock:
            _local.discard(str(job_id))
