"""A real Celery worker on the ``ingest`` and ``inference`` queues answers a task sent through Redis."""

import uuid

import pytest
from celery import Celery


def client_app(redis_url: str) -> Celery:
    """A Celery client configured from the project's settings, pointed at the test Redis."""
    app = Celery("kefu-test-client")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=redis_url, result_backend=redis_url)
    return app


@pytest.mark.slow
def test_a_task_round_trips_through_each_queue(redis_url, start_celery_worker):
    # given a real worker consuming both queues
    worker = start_celery_worker(["ingest", "inference"], pool="threads", concurrency=2,
                                 env={"KEFU_MODEL": "tiny-olmoe"})
    app = client_app(redis_url)
    for queue in ("ingest", "inference"):
        payload = uuid.uuid4().hex
        # when a ping is sent on that queue
        result = app.send_task("kefu.ping", args=[payload], queue=queue)
        answer = result.get(timeout=60)
        # then the worker process answered it, from that queue
        assert answer["payload"] == payload
        assert answer["queue"] == queue
        assert answer["pid"] == worker.process.pid


@pytest.mark.slow
def test_routes_send_app_tasks_to_their_queue(redis_url, settings):
    # given the project's routes / when Celery routes task names / then kb → ingest, inference → inference
    from kefu.background import queue_of

    class Named:
        def __init__(self, name):
            self.name = name

    assert queue_of(Named("kb.ingest_document")) == "ingest"
    assert queue_of(Named("inference.generate")) == "inference"
    assert queue_of(Named("analytics.rollup")) == settings.CELERY_TASK_DEFAULT_QUEUE
