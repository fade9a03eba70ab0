"""Start-up checks: is the configuration one Kefu can run with?

Each check returns a :class:`ComponentStatus`; ``exit_on_failure`` runs the
blocking ones when a process starts (web, worker, manage.py serve) and ends the
process with one clear line when one fails. ``/readyz`` reuses the same checks.
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from django.conf import settings
from django.db import connection, connections

from inference.catalog import resolve_model
from kb.embedding import resolve_embedding_model
from kb.search_backends import SearchBackendConfigError, configured_backend, configured_name
from kefu.config import ConfigError, redact
from kefu.status import ComponentStatus

log = logging.getLogger(__name__)


def check_database(*, wait_s: float = 0.0, backoff_s: float = 0.5, max_backoff_s: float = 4.0) -> ComponentStatus:
    """Open a connection and run ``SELECT 1``; while that fails, retry with doubling backoff for up to ``wait_s``.

    Each retry is announced on stderr (the log), so an operator sees a process waiting for its
    database rather than a silent one; ``wait_s=0`` (``/readyz``) tries once.
    """
    vendor = connection.vendor
    started, delay = time.monotonic(), backoff_s
    while True:
        try:
            database_ping(connection)
            return ComponentStatus("database", True, vendor)
        except Exception as exc:  # noqa: BLE001 - any driver error means "not reachable"
            last_error = one_line(exc)
            connection.close()
        if time.monotonic() - started + delay > wait_s:
            return ComponentStatus("database", False, f"{vendor}: {last_error}")
        log.warning("the database is not reachable yet (%s); retrying in %.1f s (waiting up to %g s, "
                    "KEFU_DATABASE_WAIT)", last_error, delay, wait_s)
        time.sleep(delay)
        delay = min(delay * 2, max_backoff_s)


def database_ping(connection) -> None:
    """``SELECT 1`` on a connection of its own. Not through the connection pool: a pool retries a database that is
    down in the background and makes its caller wait out its whole timeout (30 s), with no error to report."""
    if connection.vendor == "postgresql" and connection.settings_dict.get("OPTIONS", {}).get("pool"):
        with connection.Database.connect(**connection.get_connection_params()) as direct:
            direct.execute("SELECT 1")
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> ComponentStatus:
    """PING the configured Redis; embedded mode reports it as not needed."""
    if not settings.REDIS_URL:
        return ComponentStatus("redis", True, "not configured (embedded mode)")
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        return ComponentStatus("redis", True, redact(settings.REDIS_URL))
    except Exception as exc:  # noqa: BLE001
        return ComponentStatus("redis", False, f"{redact(settings.REDIS_URL)}: {one_line(exc)}")


def check_search_backend() -> ComponentStatus:
    """The configured search backend answers (local: always; Milvus: lists its collections)."""
    try:
        name = configured_name()
        status = configured_backend().status()
    except SearchBackendConfigError as exc:
        return ComponentStatus("search_backend", False, str(exc), {"backend": settings.KEFU_SEARCH_BACKEND})
    return ComponentStatus("search_backend", status.ok, status.detail, {"backend": name})


def check_models() -> list[ComponentStatus]:
    """Resolve the configured generator and embedding model without loading them."""
    statuses = []
    for name, resolve, value in (
        ("generator_config", lambda: resolve_model(settings.KEFU_MODEL, settings.KEFU_MODEL_BACKEND), None),
        ("embedding_config", lambda: resolve_embedding_model(settings.KEFU_EMBEDDING_MODEL), None),
    ):
        try:
            statuses.append(ComponentStatus(name, True, str(resolve() or value)))
        except ConfigError as exc:
            statuses.append(ComponentStatus(name, False, str(exc)))
    return statuses


def startup_problems(*, database_wait_s: float | None = None) -> list[str]:
    """Every reason this process should not start, as one line each."""
    problems = []
    for status in check_models():
        if not status.ok:
            problems.append(status.detail)
    redis_status = check_redis()
    if not redis_status.ok:
        problems.append(
            f"REDIS_URL is set but Redis does not answer ({redis_status.detail}); "
            "start Redis, or unset REDIS_URL to run embedded"
        )
    search = check_search_backend()
    from kb.search_backends import forget_backends

    forget_backends()  # a gRPC channel must not cross the fork of a prefork worker: each process opens its own
    if not search.ok:
        problems.append(f"KEFU_SEARCH_BACKEND={search.extra['backend']} but the search backend cannot be used "
                        f"({search.detail}); start it, or set KEFU_SEARCH_BACKEND=local")
    wait_s = settings.KEFU_DATABASE_WAIT if database_wait_s is None else database_wait_s
    database = check_database(wait_s=wait_s)
    connections.close_all()  # this thread's connections; request threads open their own
    if not database.ok:
        problems.append(f"the database is not reachable ({database.detail})")
    return problems


def exit_on_failure(process: str) -> None:
    """Run the start-up checks; print one line per problem and exit 2 if there is any.

    The checks run in a thread of their own: uvicorn with ``--workers`` imports the app
    inside its event loop, where Django refuses synchronous database calls.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-preflight") as executor:
        problems = executor.submit(startup_problems).result()
    if problems:
        for problem in problems:
            sys.stderr.write(f"kefu {process}: configuration error: {problem}\n")
        sys.stderr.flush()
        sys.exit(2)


def one_line(exc: BaseException) -> str:
    """An exception as a single line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
