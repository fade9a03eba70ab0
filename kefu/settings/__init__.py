"""Kefu settings: embedded defaults, switched to services by the environment.

No ``REDIS_URL`` → embedded mode: local-memory cache, in-memory token streams,
background work in threads of the web process. ``REDIS_URL`` set → service mode:
Celery on Redis with the ``ingest`` and ``inference`` queues, Redis cache and
Redis Streams for tokens. ``DATABASE_URL`` picks PostgreSQL; SQLite otherwise.
Production hardening lives in :mod:`kefu.settings.production`.
"""

from kefu.settings.base import *  # noqa: F403
