"""Run a Celery task's work now or later, the same way in both modes.

Service mode: ``task.apply_async`` puts the message on its queue (routes in settings).
Embedded mode: there is no broker, and an eager task would block the request that
enqueued it, so the task body runs in a thread pool of this process, one pool per
queue. Callers inside a transaction should wrap the call in
``transaction.on_commit`` so a worker never reads a row that is not there yet.
"""

from __future__ import annotations

import importlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections

from kefu.celery import app

log = logging.getLogger(__name__)

# Threads per queue in embedded mode: ingestion is CPU-bound (one at a time keeps the
# web process responsive); inference tasks mostly wait on the batching engine.
EMBEDDED_THREADS = {"default": 1, "ingest": 1, "inference": 16}

_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def enqueue(task, *args, queue: str | None = None, **kwargs) -> Future | None:
    """Send ``task(*args, **kwargs)`` to its queue; in embedded mode run it in a thread.

    ``task`` is a Celery task or the name it is registered under: a service enqueues its own app's task by
    name, since the tasks module imports the service (each task is a thin wrapper around one)."""
    if isinstance(task, str):
        task = task_named(task)
    queue = queue or queue_of(task)
    if settings.KEFU_MODE == "service":
        task.apply_async(args=args, kwargs=kwargs, queue=queue)
        return None
    return pool(queue).submit(run_in_thread, task, args, kwargs)


def task_named(name: str):
    """The task registered under ``name`` (``<app>.<task>``); its app's tasks module is imported first if need
    be (a worker imports every tasks module at start, a web process this one when it first enqueues it)."""
    if name not in app.tasks:
        importlib.import_module(name.partition(".")[0] + ".tasks")
    return app.tasks[name]


def queue_of(task) -> str:
    """The queue a task is routed to by name, as Celery's router would choose it."""
    for prefix, route in settings.CELERY_TASK_ROUTES.items():
        if task.name.startswith(prefix.rstrip("*")):
            return route["queue"]
    return settings.CELERY_TASK_DEFAULT_QUEUE


def pool(queue: str) -> ThreadPoolExecutor:
    """The process-wide thread pool serving one queue in embedded mode."""
    with _pools_lock:
        if queue not in _pools:
            _pools[queue] = ThreadPoolExecutor(
                max_workers=EMBEDDED_THREADS.get(queue, 1), thread_name_prefix=f"kefu-{queue}"
            )
        return _pools[queue]


def run_in_thread(task, args: tuple, kwargs: dict):
    """Run the task body with fresh database connections, logging (not losing) failures."""
    close_old_connections()
    try:
        return task.apply(args=args, kwargs=kwargs, throw=True).get()
    except Exception:
        log.exception("background task %s%r failed", task.name, args)
        raise
    finally:
        close_old_connections()


def drain(timeout: float = 60.0) -> None:
    """Wait until every embedded pool is idle (tests and graceful shutdown)."""
    with _pools_lock:
        pools = list(_pools.values())
    for executor in pools:
        executor.submit(lambda: None).result(timeout=timeout)
