"""Celery glue for the inference worker (the generation task itself lands with the engine)."""

from celery import signals
from django.conf import settings

from kefu.celery import app  # noqa: F401 - tasks of this module register on the project app


@signals.worker_ready.connect
def load_model_at_worker_start(sender=None, **_: object) -> None:
    """A worker consuming the ``inference`` queue loads its model once, at start."""
    import threading

    from inference.worker import consumes_inference, start_worker_engine

    if sender is not None and consumes_inference(sender):
        threading.Thread(target=start_worker_engine, name="kefu-engine-start", daemon=True).start()


@signals.worker_shutdown.connect
def remove_heartbeat_at_worker_stop(**_: object) -> None:
    from inference.worker import stop_heartbeat

    if settings.REDIS_URL:
        stop_heartbeat()
