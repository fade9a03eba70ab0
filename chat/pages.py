"""Server-rendered chat pages: the demo company page with the widget on it.

The page exists for trying Kefu locally: it is off (404) where ``KEFU_DEMO_PAGE`` is false — always
under ``kefu.settings.production`` — and it only reads. ``manage.py demo_setup`` creates the demo base
and its widget key with the origins it may be used from (``KEFU_DEMO_ORIGINS``, ``--origin``); a GET
never writes to the database and never shows another base.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from chat.services import demo_widget_key


def demo(request: HttpRequest) -> HttpResponse:
    """A sample company page embedding the widget with the demo base's key."""
    if not settings.KEFU_DEMO_PAGE:
        raise Http404("the demo page is off")
    key = demo_widget_key()
    if key is None:
        return unavailable(_("The demo knowledge base is not set up: run `python manage.py demo_setup` first."))
    origin = f"{request.scheme}://{request.get_host()}"
    if origin not in {allowed.rstrip("/") for allowed in key.allowed_origins}:
        return unavailable(_("The demo widget key does not allow %(origin)s: run "
                             "`python manage.py demo_setup --origin %(origin)s` to add it.") % {"origin": origin})
    return render(request, "chat/demo.html", {"widget_key": key, "knowledge_base": key.knowledge_base})


def unavailable(message: str) -> HttpResponse:
    return HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
