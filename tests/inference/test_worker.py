"""``inference.generate`` on a real Celery worker (service mode: Redis broker, Redis Streams, test database)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from celery import Celery

from inference.models import GenerationJob
from inference.services import generation_reap_stale
from inference.stream import DONE, ERROR, TOKEN, open_stream, read_all

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def send_generate(redis_url: str, job_id: str) -> None:
    """Send the task the way service mode does: by name, to the inference queue, through Redis."""
    app = Celery("kefu-test-client")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=redis_url)
    app.send_task("inference.generate", args=[job_id], queue="inference")


@pytest.fixture
def service_mode(settings, redis_url):
    settings.KEFU_MODE, settings.REDIS_URL = "service", redis_url
    return redis_url


def test_worker_generates_streams_and_records_expert_counts(service_mode, start_celery_worker):
    # given a real inference worker serving a tiny MoE model (metrics on a port), and a queued job
    from tests.conftest import free_port, http_get

    port = free_port()
    worker = start_celery_worker(["inference"], pool="threads", concurrency=4,
                                 env={"KEFU_MODEL": "tiny-mixtral", "KEFU_INFERENCE_METRICS_PORT": str(port)})
    job = GenerationJob.objects.create(messages=QUESTION, temperature=0.0, top_p=1.0, max_new_tokens=12)

    # when the task is sent through Redis and the job's Redis stream is followed
    send_generate(service_mode, str(job.pk))
    events = read_all(open_stream(job.pk), timeout_s=180)

    # then tokens then done arrive, and the row holds the outcome with per-layer expert counts
    assert events and events[-1].kind == DONE, worker.log()[-3000:]
    assert {event.kind for event in events[:-1]} <= {TOKEN}
    job.refresh_from_db()
    assert job.status == "done" and job.worker.endswith(f":{worker.process.pid}")
    assert job.expert_counts["num_experts"] == 8
    assert events[-1].data["expert_counts"] == job.expert_counts
    # and the worker's own metrics endpoint counted the tokens and the expert load
    status, body, _ = http_get(f"http://127.0.0.1:{port}/metrics")
    metrics = body.decode()
    assert status == 200
    assert f"kefu_generation_tokens_total {float(job.completion_tokens)}" in metrics
    assert 'kefu_moe_expert_load_max_over_mean{layer="0"}' in metrics
    open_stream(job.pk).delete()


def test_a_killed_worker_leaves_a_failed_job_not_a_generating_one(service_mode, settings, start_celery_worker):
    # given a worker generating a long answer
    worker = start_celery_worker(["inference"], pool="threads", concurrency=2, env={"KEFU_MODEL": "smollm2-135m"})
    job = GenerationJob.objects.create(messages=[{"role": "user", "content": "Write a long story about a dragon."}],
                                       temperature=0.0, top_p=1.0, max_new_tokens=500)
    send_generate(service_mode, str(job.pk))
    stream = open_stream(job.pk)
    first = stream.read(block_ms=120_000)
    assert first and first[0].kind == TOKEN, worker.log()[-3000:]

    # when the worker is killed mid-generation (no chance to write anything)
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)
    job.refresh_from_db()
    assert job.status == "running"

    # then, once the job is past the stale limit, the reaper fails it and the reader gets an error
    settings.KEFU_GENERATION_STALE_AFTER = 1
    time.sleep(1.5)
    assert generation_reap_stale() == [str(job.pk)]
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "worker_lost")
    events = read_all(stream, after=first[-1].id, timeout_s=10)
    assert events[-1].kind == ERROR and events[-1].data["code"] == "worker_lost"
    stream.delete()
