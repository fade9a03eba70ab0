"""Static files served by WhiteNoise, from a middleware that does not force every request onto a thread.

Django runs the whole middleware chain in a worker thread as soon as one middleware is sync-only, and
WhiteNoise's is: every chat API request then hopped event loop → thread (the chain) → event loop (the async
view) → thread (its database work). This subclass is async-capable: a static path is looked up in memory
and served off the loop; anything else goes on to the next (async) middleware directly.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise for sync and async chains alike."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=None):
        if settings is None:
            super().__init__(get_response)
        else:
            super().__init__(get_response, settings)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return super().__call__(request)

    def static_file(self, path: str):
        return self.find_file(path) if self.autorefresh else self.files.get(path)

    async def __acall__(self, request):
        static_file = self.static_file(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
