"""Make a test's base the demo page's base, as ``manage.py demo_setup`` would (the page never does it itself)."""

from __future__ import annotations


def as_demo_base(kb, *, origin: str):
    """Give ``kb`` the demo slug and the demo widget key allowing ``origin`` (e.g. a live server's base URL)."""
    from chat.services import demo_widget_key_ensure
    from kb.demo import DEMO_SLUG
    from kb.models import KnowledgeBase

    KnowledgeBase.objects.filter(pk=kb.pk).update(slug=DEMO_SLUG)
    kb.refresh_from_db()
    demo_widget_key_ensure(knowledge_base=kb, origins=[origin])
    return kb
