"""A bound on the database connections one web process opens for the chat API.

Django runs each request's sync code in a thread of its own (asgiref's thread-sensitive
context per request), each thread opens its own connection, and that connection stays open
until the response ends — for an SSE stream, as long as the answer streams. 200 visitors at
once meant 200+ PostgreSQL connections against a default ``max_connections`` of 100: "too many
clients already" and 503s (found by ``bench/load_sse.py``).

So the chat views run their database work through :func:`with_db_slot` (from the event loop:
:func:`db_call`, on ``KEFU_WEB_DB_THREADS`` reused threads. A thread per request, as asgiref's
thread-sensitive mode makes, cost a thread start and a new connection wrapper every time, and 16
threads fighting for the GIL cost more than 4 in a burst: 23 vs 17 ms of CPU per ask): a thread takes one of
``KEFU_WEB_DB_CONNECTIONS`` slots first, waits up to ``KEFU_WEB_DB_WAIT_S`` for one (then an
``OperationalError``, which the views answer with a 503), and closes its connection when it gives
the slot back. One process never holds more connections than that for the chat API, and an open
stream holds none while it waits for tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import wraps
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import OperationalError, connections

T = TypeVar("T")
_slots: threading.BoundedSemaphore | None = None
_slots_size = 0
_slots_lock = threading.Lock()


def slots() -> threading.BoundedSemaphore:
    """The process's slots, sized from the settings (made again when a test changes the size)."""
    global _slots, _slots_size
    size = settings.KEFU_WEB_DB_CONNECTIONS
    with _slots_lock:
        if _slots is None or _slots_size != size:
            _slots, _slots_size = threading.BoundedSemaphore(size), size
        return _slots


@contextmanager
def db_slot():
    """Hold a slot while this thread uses the database; its connection is closed before the slot is freed
    (unless a transaction is open around it, as in a test)."""
    gate = slots()
    if not gate.acquire(timeout=settings.KEFU_WEB_DB_WAIT_S):
        raise OperationalError(f"all {settings.KEFU_WEB_DB_CONNECTIONS} database connections of this web "
                               f"process stayed busy for {settings.KEFU_WEB_DB_WAIT_S:g} s")
    try:
        yield
    finally:
        try:
            close_connections()
        finally:
            gate.release()


def close_connections() -> None:
    """Close this thread's connections (CONN_MAX_AGE is 0), never one inside a transaction (tests)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def with_db_slot(function: Callable[..., T]) -> Callable[..., T]:
    """``function`` run inside :func:`db_slot` (for ``sync_to_async``)."""

    @wraps(function)
    def gated(*args, **kwargs) -> T:
        with db_slot():
            return function(*args, **kwargs)

    return gated


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def db_executor() -> ThreadPoolExecutor | None:
    """The process's threads for the chat API's database work (``KEFU_WEB_DB_THREADS``; None when 0)."""
    global _executor
    threads = settings.KEFU_WEB_DB_THREADS
    if threads <= 0:
        return None
    with _executor_lock:
        if _executor is None or _executor._max_workers != threads:
            _executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kefu-db")
        return _executor


def db_call(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``function`` for ``await`` from the event loop, inside a slot: on :func:`db_executor`'s few reused
    threads, or — with ``KEFU_WEB_DB_THREADS=0`` — on asgiref's thread of the request (tests that keep
    their data in an open transaction need that one thread)."""
    executor = db_executor()
    if executor is None:
        return sync_to_async(with_db_slot(function))
    return sync_to_async(with_db_slot(function), thread_sensitive=False, executor=executor)
