"""Inference worker start-up: load the model once, then keep a heartbeat in Redis.

Connected to Celery's ``worker_ready`` signal by ``inference.tasks``; only a worker
that consumes the ``inference`` queue loads the generator. The heartbeat (a Redis
key with a short expiry) is how the web side's ``/readyz`` knows a worker is
serving, and which model.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading

import redis
from django.conf import settings
from prometheus_client import start_http_server

from inference.metrics import gpu_memory_sample
from inference.runtime import current_generator, generator_state, start_in_process_engine
from inference.selectors import HEARTBEAT_PREFIX

log = logging.getLogger(__name__)


def heartbeat_ttl_s() -> int:
    """Seconds a heartbeat outlives its worker (KEFU_INFERENCE_HEARTBEAT_TTL); written every third of it."""
    return int(getattr(settings, "KEFU_INFERENCE_HEARTBEAT_TTL", 15))


def consumes_inference(consumer) -> bool:
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    return any(queue.name == "inference" for queue in queues)


_stop_heartbeat = threading.Event()


def heartbeat_key() -> str:
    return f"{HEARTBEAT_PREFIX}{socket.gethostname()}:{os.getpid()}"


def start_worker_engine() -> None:
    """Load the generator and start the heartbeat thread (and the metrics endpoint when configured)."""
    threading.Thread(target=heartbeat_loop, args=(_stop_heartbeat,), name="kefu-heartbeat", daemon=True).start()
    start_metrics_server()
    start_in_process_engine()


def start_metrics_server() -> None:
    """The worker has no web server: prometheus-client serves its registry on KEFU_INFERENCE_METRICS_PORT."""
    port = getattr(settings, "KEFU_INFERENCE_METRICS_PORT", 0)
    if not port:
        return

    start_http_server(port)
    log.info("inference worker metrics on :%s/metrics", port)


def stop_heartbeat() -> None:
    """Stop beating and remove this worker's key, so /readyz stops counting it at once."""
    _stop_heartbeat.set()
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).delete(heartbeat_key())
    except redis.RedisError as exc:
        log.warning("heartbeat not removed (it expires in %ss): %s", heartbeat_ttl_s(), exc)


def heartbeat_loop(stop: threading.Event) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    key = heartbeat_key()
    ttl_s = heartbeat_ttl_s()
    while not stop.is_set():
        state = generator_state()
        beat = {"hostname": socket.gethostname(), "pid": os.getpid(), "model": settings.KEFU_MODEL,
                "status": state.status, "detail": state.detail}
        try:
            client.set(key, json.dumps(beat), ex=ttl_s)
        except redis.RedisError as exc:
            log.warning("heartbeat not written: %s", exc)
        gpu_memory_beat()
        stop.wait(max(ttl_s / 3, 0.5))


def gpu_memory_beat() -> None:
    """Refresh the GPU memory gauges with every heartbeat, also while no request moves the engine."""
    generator = current_generator()
    if generator is None:
        # Not loaded yet: sampling would import torch here and wait on the import lock while the
        # engine thread loads the model, and a heartbeat late past its expiry reads as a dead worker.
        return
    try:
        gpu_memory_sample(getattr(generator, "device", None), every_s=0)
    except RuntimeError as exc:  # a CUDA error must not stop the heartbeat
        log.warning("GPU memory not sampled: %s", exc)
