"""The chat API through the web process's own ASGI handler (kefu.asgi_handler), called in process.

Django's test clients use handlers of their own; these tests send ASGI requests to the handler uvicorn runs:
a chat request hops to a thread once (its view's database work) instead of once per middleware and signal,
and answers exactly as Django's own handler does — headers, language, errors. Sync views go Django's way.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import translation

from chat.models import Message
from kefu.asgi_handler import KefuASGIHandler, path_is_async, view_is_async
from tests.chat.test_views import ORIGIN


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def asgi_call(app, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b"") -> Reply:
    """One HTTP request through ``app`` as uvicorn would send it; the response as it went out.

    As Django's test clients do, ``close_old_connections`` is off during the request: the test's rows live in
    the open transaction of this thread's connection, where thread-sensitive work runs."""
    sent: list[dict] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    header_list = [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": header_list,
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}

    async def receive():
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # the client stays connected; the handler cancels this listener

    async def send(message):
        sent.append(message)

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        async_to_sync(app)(scope, receive, send)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers_out: dict[str, str] = {}
    for name, value in start["headers"]:
        key = name.decode().lower()
        headers_out[key] = f"{headers_out[key]}, {value.decode()}" if key in headers_out else value.decode()
    return Reply(start["status"], headers_out,
                 b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def ask(app, widget_key, text: str, **headers: str) -> Reply:
    return asgi_call(app, "POST", "/api/v1/chat/messages", body=json.dumps({"text": text}).encode(),
                     headers={"content-type": "application/json", "x-kefu-key": widget_key.public_key,
                              "origin": ORIGIN, **headers})


@pytest.fixture(autouse=True)
def web_process_receivers(settings):
    """request_started as a web process has it (kefu.runtime drops kb's resume receiver when resuming is
    off, as it is in tests); kb's receiver is connected again afterwards if it was before."""
    from kb import apps as kb_apps
    from kefu.runtime import request_signals_trim

    was_connected = kb_apps.resume_on_first_request in request_started._live_receivers(None)[0]
    request_signals_trim()
    yield
    if was_connected:
        request_started.connect(kb_apps.resume_on_first_request, dispatch_uid="kb-resume-on-start")


@pytest.fixture
def hops(monkeypatch) -> list[str]:
    """The name of every function the request sent to a thread through asgiref's sync_to_async."""
    seen: list[str] = []
    real = SyncToAsync.__call__

    def counted(self, *args, **kwargs):
        seen.append(getattr(self.func, "__qualname__", repr(self.func)))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return seen


def test_a_chat_ask_goes_to_a_thread_once_for_its_database_work(widget_key, fake_generator, hops):
    app = KefuASGIHandler()
    # when a customer asks (a direct answer: guard, rate limit, pipeline, two stored messages)
    reply = ask(app, widget_key, "What are your opening hours?")
    # then it is answered, and the one hop was the view's database work (chat.db_slots.db_call): no middleware,
    # signal or response.close() took a thread of its own
    assert reply.status == 202 and reply.json()["outcome"] == "direct"
    assert hops == ["api_call.<locals>.run"]


def test_the_chat_api_answers_with_the_headers_djangos_own_handler_gives(widget_key, fake_generator):
    # given the same two asks (a direct answer, then its cached repeat) through Django's handler and through ours
    replies = {}
    for name, app in (("django", ASGIHandler()), ("kefu", KefuASGIHandler())):
        Message.objects.all().delete()
        from chat.models import CachedAnswer

        CachedAnswer.objects.all().delete()
        replies[name] = [ask(app, widget_key, "What are your opening hours?", **{"accept-language": "zh-hans"}),
                         ask(app, widget_key, "What are your opening hours?")]
    # then every header but the body's length is the same: security headers, language, CORS, Vary
    for django_reply, kefu_reply in zip(replies["django"], replies["kefu"], strict=True):
        assert kefu_reply.status == django_reply.status == 202
        assert without_length(kefu_reply.headers) == without_length(django_reply.headers)
        assert kefu_reply.json()["outcome"] == django_reply.json()["outcome"]
    headers = replies["kefu"][0].headers
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["content-language"] == "zh-hans" and "Accept-Language" in headers["vary"]


def without_length(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name != "content-length"}


def test_an_error_of_the_api_is_in_the_callers_language(widget_key, fake_generator):
    app = KefuASGIHandler()
    # when a widget in Chinese names a conversation that does not exist
    reply = asgi_call(app, "GET", "/api/v1/chat/conversations/nope",
                      headers={"x-kefu-key": widget_key.public_key, "origin": ORIGIN, "accept-language": "zh-hans"})
    # then the language the locale middleware activated on the loop reached the view's database thread
    with translation.override("zh-hans"):
        expected = translation.gettext("No such conversation for this widget key.")
    assert expected != "No such conversation for this widget key."
    assert reply.status == 404 and reply.json()["error"]["message"] == expected


def test_a_sync_view_is_served_the_django_way(db, hops):
    app = KefuASGIHandler()
    # when a staff page (a sync view) is requested
    reply = asgi_call(app, "GET", "/staff/login/")
    # then its middleware and view ran on threads, as Django runs them, and set the CSRF cookie as ever
    assert reply.status == 200 and "csrftoken=" in reply.headers.get("set-cookie", "")
    assert len(hops) > 5


def test_a_request_started_receiver_of_another_app_runs_on_a_thread(widget_key, fake_generator, hops):
    ran_on_loop: list[bool] = []

    def receiver(**_kwargs):
        try:
            asyncio.get_running_loop()
            ran_on_loop.append(True)
        except RuntimeError:
            ran_on_loop.append(False)

    request_started.connect(receiver, dispatch_uid="test-another-app")
    try:
        reply = ask(KefuASGIHandler(), widget_key, "What are your opening hours?")
    finally:
        request_started.disconnect(dispatch_uid="test-another-app")
    # then a receiver this handler does not know ran where Django runs it: off the event loop
    assert reply.status == 202 and ran_on_loop == [False]


def test_only_the_chat_apis_async_views_are_served_on_the_loop(db):
    def scope(path: str) -> dict:
        return {"type": "http", "path": path, "root_path": ""}

    path_is_async.cache_clear()
    assert view_is_async(scope("/api/v1/chat/messages"))
    assert view_is_async(scope("/api/v1/chat/messages/0b4e7a0e-0000-4000-8000-000000000000/stream"))
    assert view_is_async(scope("/api/v1/chat/conversations/abc/events"))
    assert not view_is_async(scope("/staff/login/"))
    assert not view_is_async(scope("/chat/demo/"))
    assert not view_is_async(scope("/no/such/page"))
    # and a made-up long path is resolved each time, never remembered
    remembered = path_is_async.cache_info().currsize
    assert view_is_async(scope(f"/api/v1/chat/messages/{'a' * 300}/stream"))
    assert not view_is_async(scope(f"/{'b' * 300}"))
    assert path_is_async.cache_info().currsize == remembered


def test_a_service_mode_web_process_keeps_only_djangos_request_receivers(settings):
    from kb import apps as kb_apps
    from kefu.asgi_handler import LOOP_SAFE_RECEIVERS
    from kefu.runtime import request_signals_trim

    # given kb's resume-on-first-request receiver, connected in every process
    request_started.connect(kb_apps.resume_on_first_request, dispatch_uid="kb-resume-on-start")
    settings.KEFU_MODE = "service"
    try:
        # when a service-mode web process starts
        request_signals_trim()
        sync_receivers, _ = request_started._live_receivers(None)
        # then request_started holds Django's own receivers only: the handler sends it on the loop
        assert sync_receivers and set(sync_receivers) <= LOOP_SAFE_RECEIVERS
    finally:
        request_started.disconnect(dispatch_uid="kb-resume-on-start")  # web_process_receivers restores the rest
