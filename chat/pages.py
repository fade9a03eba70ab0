"""Server-rendered chat pages: the demo company pages with the widget on them.

Two pages, one per demo base (``kb.demo``): ``/chat/demo/`` (the English zaragoza FAQ) and ``/chat/demo/zh/``
(Debian's FAQ in Chinese: a Chinese site, rendered in Simplified Chinese whatever the visitor's language,
its widget tagged ``data-lang="zh"``). They exist for trying Kefu locally: they are off (404) where
``KEFU_DEMO_PAGE`` is false — always under ``kefu.settings.production`` — and they only read.
``manage.py demo_setup`` creates the demo bases and their widget keys with the origins they may be used from
(``KEFU_DEMO_ORIGINS``, ``--origin``); a GET never writes to the database and never shows another base.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _

from chat.services import demo_slugs, demo_widget_key


def demo(request: HttpRequest) -> HttpResponse:
    """A sample company page embedding the widget with the English demo base's key."""
    return demo_page(request, slug=demo_slugs()[0], template="chat/demo.html")


def demo_zh(request: HttpRequest) -> HttpResponse:
    """A sample Chinese help centre embedding the widget with the Chinese demo base's key."""
    return demo_page(request, slug=demo_slugs()[1], template="chat/demo_zh.html", language="zh-hans")


def demo_page(request: HttpRequest, *, slug: str, template: str, language: str = "") -> HttpResponse:
    """The demo page of one demo base, or a plain 503 saying which ``demo_setup`` run it needs."""
    if not settings.KEFU_DEMO_PAGE:
        raise Http404("the demo page is off")
    key = demo_widget_key(slug)
    if key is None:
        return unavailable(_("The demo knowledge base is not set up: run `python manage.py demo_setup` first."))
    origin = f"{request.scheme}://{request.get_host()}"
    if origin not in {allowed.rstrip("/") for allowed in key.allowed_origins}:
        return unavailable(_("The demo widget key does not allow %(origin)s: run "
                             "`python manage.py demo_setup --origin %(origin)s` to add it.") % {"origin": origin})
    context = {"widget_key": key, "knowledge_base": key.knowledge_base}
    if not language:
        return render(request, template, context)
    with translation.override(language):
        return render(request, template, context)


def unavailable(message: str) -> HttpResponse:
    return HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
