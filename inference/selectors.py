"""Reads about the inference side that other apps (and /readyz) may ask for."""

from __future__ import annotations

import json

from django.conf import settings

from kefu.preflight import ComponentStatus

HEARTBEAT_PREFIX = "kefu:inference:heartbeat:"


def generator_status() -> ComponentStatus:
    """Embedded: the in-process generator. Service: a live inference worker's heartbeat."""
    if settings.KEFU_MODE == "embedded":
        from inference.runtime import generator_state

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
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = sorted(client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100))
        values = client.mget(keys) if keys else []
    except redis.RedisError:
        return []
    return [json.loads(value) for value in values if value]
