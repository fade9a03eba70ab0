"""Django's Redis cache with one connection pool per process, not one per request.

Django keeps a cache object per thread and per async context, and each ``RedisCache`` builds its own
client with its own connection pools: under ASGI every request opened (and resolved, and connected) a
fresh Redis connection — visible in ``bench/profile_web.py`` as ``getaddrinfo`` and ``Connection._connect``.
Here every cache object of the same servers and options shares one client (redis-py's pools are
thread-safe), so connections are reused across requests and threads.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


class SharedRedisCache(RedisCache):
    """:class:`RedisCache` whose client (and so its connection pools) is shared by the whole process."""

    @cached_property
    def _cache(self):
        key = (self._class, tuple(self._servers), repr(sorted(self._options.items())))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
            return client
