"""Celery glue for the inference worker: the generation task, the reaper, model loading at start.

``inference.generate`` takes a job id and calls :func:`inference.services.generation_run`,
which tests call directly. The worker runs with ``-P threads``: many tasks wait on the
one batching engine of the process at once, so the thread pool's soft time limits do
not apply — the engine's own per-request timeout and ``generation_run``'s deadline do.
Both tasks go to the ``inference`` queue through ``CELERY_TASK_ROUTES`` (``inference.*``;
Celery 6 drops the per-task ``queue`` attribute).
"""

import threading

from celery import signals
from django.conf import settings

from inference.services import generation_reap_stale, generation_run
from inference.worker import consumes_inference, start_worker_engine, stop_heartbeat
from kefu.celery import app


# Acknowledged on receipt, unlike the other tasks: a redelivered generation is a no-op anyway (the
# job is claimed once; a worker that died mid-way leaves it to the reaper), and an unacknowledged
# message in flight makes kombu crash the worker when Redis restarts (its restore-at-reconnect path
# raises AttributeError: "'NoneType' object has no attribute 'hostname'", celery/kombu 5.x).
@app.task(name="inference.generate", acks_late=False, ignore_result=True,
          soft_time_limit=settings.KEFU_GENERATION_TIMEOUT + 30, time_limit=settings.KEFU_GENERATION_TIMEOUT + 60)
def generate(job_id: str) -> None:
    """Run one generation job; its events go to the job's token stream."""
    generation_run(job_id=job_id)


@app.task(name="inference.reap_stale", acks_late=True, ignore_result=True, time_limit=60)
def reap_stale() -> None:
    """Fail jobs left "running" by a worker that died (scheduled every minute by beat)."""
    generation_reap_stale()


@signals.worker_ready.connect
def load_model_at_worker_start(sender=None, **_: object) -> None:
    """A worker consuming the ``inference`` queue loads its model once, at start."""
    if sender is not None and consumes_inference(sender):
        threading.Thread(target=start_worker_engine, name="kefu-engine-start", daemon=True).start()


@signals.worker_shutdown.connect
def remove_heartbeat_at_worker_stop(**_: object) -> None:
    if settings.REDIS_URL:
        stop_heartbeat()
