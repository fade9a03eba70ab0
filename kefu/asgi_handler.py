"""The web process's ASGI handler: Django's, with the requests of async views kept on the event loop.

Django serves an ASGI request on a thread of its own (asgiref's ``ThreadSensitiveContext``: a new thread per
request) and hops to it for every sync piece on the request's way: ``request_started``'s receivers, each
``MiddlewareMixin`` middleware's ``process_request`` and ``process_response`` (security, sessions, locale,
common, CSRF, auth, messages, X-Frame-Options), CSRF's ``process_view``, and ``response.close()`` with
``request_finished``. A cached chat ask made 17 such hops and started a thread before its view's one
database hop; in a burst of 200 that was more of the web's CPU than the answers
(``bench/profile_web.py``: ``ThreadPoolExecutor.submit`` and thread starts ~40 % of GIL time).

For a request whose view is a coroutine function — the chat API, whose views do all their database and
Redis work in :func:`chat.db_slots.db_call` threads and never touch the session, the user or messages —
this handler runs those sync pieces on the event loop instead: there they only read headers and set
attributes, and the request's context holds no database connection for ``close_old_connections`` to
close. The same middleware run, in the same order, with the same results; only the thread differs. A
signal receiver other than Django's own (:data:`LOOP_SAFE_RECEIVERS`) sends the signal Django's way, on
the request's thread. Requests to sync views (staff pages, the admin) are served exactly as Django
serves them.

An async view served here must not use ``request.session``, ``request.user`` or messages (it cannot
without a thread anyway): their middleware would then save to the database from the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

import django
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, reset_queries
from django.dispatch import Signal
from django.http import HttpResponseBase
from django.urls import Resolver404, get_resolver, set_script_prefix
from django.utils.deprecation import MiddlewareMixin

# Django's own request-signal receivers: on the loop they find no connection, cache or urlconf to reset that
# the request's async context opened (its database work ran, and closed its connections, in db_call threads).
LOOP_SAFE_RECEIVERS = frozenset({reset_queries, close_old_connections, close_caches, reset_urlconf})
ON_LOOP: ContextVar[bool] = ContextVar("kefu_request_on_loop", default=False)
# Paths remembered as async or not (ids in paths make most of them unique); a longer one is resolved each time,
# so made-up long paths cannot fill memory.
ASYNC_VIEW_PATHS = 2048
REMEMBERED_PATH_CHARS = 200


def kefu_asgi_application() -> KefuASGIHandler:
    """Django set up, and the handler (what ``django.core.asgi.get_asgi_application`` does with Django's)."""
    django.setup(set_prefix=False)
    return KefuASGIHandler()


class KefuASGIHandler(ASGIHandler):
    """:class:`ASGIHandler` that serves requests to async views without a thread hop of its own."""

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async)
        if not is_async:
            return
        for middleware in chain_middleware(self._middleware_chain):
            if isinstance(middleware, MiddlewareMixin) and type(middleware).__acall__ is MiddlewareMixin.__acall__:
                # The mixin's __call__ looks __acall__ up on the instance: this one decides per request.
                middleware.__acall__ = functools.partial(mixin_acall, middleware, threaded=middleware.__acall__)

    def adapt_method_mode(self, is_async, method, method_is_async=None, debug=False, name=None):
        adapted = super().adapt_method_mode(is_async, method, method_is_async, debug=debug, name=name)
        if is_async and adapted is not method and getattr(method, "__name__", "") == "process_view":
            return on_loop_or(method, adapted)
        return adapted

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not view_is_async(scope):
            await super().__call__(scope, receive, send)
            return
        token = ON_LOOP.set(True)
        try:
            await super().__call__(scope, receive, send)
        finally:
            ON_LOOP.reset(token)

    async def handle(self, scope, receive, send) -> None:
        """Django's ``ASGIHandler.handle``, with the request signals and ``response.close()`` on the loop."""
        if not ON_LOOP.get():
            await super().handle(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await signal_send(signals.request_started, sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await response_close(error_response)
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client went away while it was sent
                await self.send_response(response, send)
            return response

        # As Django: the view runs beside a listener for the client's disconnect, which cancels it.
        tasks = [asyncio.create_task(self.listen_for_disconnect(receive)),
                 asyncio.create_task(process_request(request, send))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signal_send(signals.request_finished, sender=self.__class__)
        else:
            await response_close(response)
        body_file.close()


def chain_middleware(chain) -> Iterator[object]:
    """The middleware instances of a loaded chain, outermost first (each wrapped by Django's exception
    converter, whose ``__wrapped__`` is the instance; the last ``get_response`` is the handler's own)."""
    node = chain
    while (instance := getattr(node, "__wrapped__", None)) is not None and hasattr(instance, "get_response"):
        yield instance
        node = instance.get_response


async def mixin_acall(middleware: MiddlewareMixin, request, *, threaded: Callable[..., Awaitable]):
    """``MiddlewareMixin.__acall__`` for a request on the loop: its sync hooks called in place, not in a thread."""
    if not ON_LOOP.get():
        return await threaded(request)
    response = middleware.process_request(request) if hasattr(middleware, "process_request") else None
    response = response or await middleware.get_response(request)
    if hasattr(middleware, "process_response"):
        response = middleware.process_response(request, response)
    return response


def on_loop_or(method: Callable, threaded: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """A view middleware hook, called in place for a request on the loop, else on the request's thread."""

    @functools.wraps(method)
    async def hook(*args):
        if ON_LOOP.get():
            return method(*args)
        return await threaded(*args)

    return hook


def loop_safe(sync_receivers: list) -> bool:
    """Whether these sync receivers of a request signal may run on the loop: Django's own only."""
    return all(receiver in LOOP_SAFE_RECEIVERS for receiver in sync_receivers)


async def signal_send(signal: Signal, *, sender, **named) -> None:
    """``signal.asend``, its sync receivers called in place when they are Django's own."""
    sync_receivers, async_receivers = signal._live_receivers(sender)  # Django's own split (5.0+)
    if not loop_safe(sync_receivers):
        await signal.asend(sender=sender, **named)
        return
    for receiver in sync_receivers:
        receiver(signal=signal, sender=sender, **named)
    for receiver in async_receivers:
        await receiver(signal=signal, sender=sender, **named)


async def response_close(response: HttpResponseBase) -> None:
    """``response.close()`` (its closers, then ``request_finished``) in place, when its receivers allow."""
    sync_receivers, async_receivers = signals.request_finished._live_receivers(response._handler_class)
    if loop_safe(sync_receivers) and not async_receivers:  # send() would run async ones via a thread
        response.close()
    else:
        await sync_to_async(response.close)()


def view_is_async(scope: dict) -> bool:
    """Whether the request's URL resolves to a coroutine view (the chat API)."""
    script_name = get_script_prefix(scope)  # as ASGIRequest finds its path_info
    path = scope["path"].removeprefix(script_name) if script_name else scope["path"]
    if len(path) > REMEMBERED_PATH_CHARS:
        return resolves_to_coroutine(path, settings.ROOT_URLCONF)
    return path_is_async(path, settings.ROOT_URLCONF)


def resolves_to_coroutine(path: str, urlconf: str) -> bool:
    try:
        match = get_resolver(urlconf).resolve(path)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)


path_is_async = functools.lru_cache(maxsize=ASYNC_VIEW_PATHS)(resolves_to_coroutine)
