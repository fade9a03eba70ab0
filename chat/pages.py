"""Server-rendered chat pages: the demo company page with the widget on it."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from chat.services import demo_widget_key


def demo(request):
    """A sample company page embedding the widget with the demo base's key (its own origin allowed)."""
    origin = f"{request.scheme}://{request.get_host()}"
    key = demo_widget_key(origin=origin)
    if key is None:
        return HttpResponse("No knowledge base is indexed yet: run `python manage.py demo_setup` first.",
                            status=503, content_type="text/plain; charset=utf-8")
    return render(request, "chat/demo.html", {"widget_key": key, "knowledge_base": key.knowledge_base})
