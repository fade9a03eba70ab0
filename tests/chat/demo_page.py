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


ZH_CHAPTERS = ("basic-defs", "kernel")  # two chapters of Debian's Chinese FAQ: ≈40 chunks, a few seconds


def zh_faq_subset(root, chapters=ZH_CHAPTERS):
    """A folder holding a few chapters of the installed Debian Chinese FAQ (the whole one takes ≈25 s to ingest)."""
    import shutil

    import pytest

    from kb.demo import DEBIAN_ZH_FAQ, DEBIAN_ZH_PATTERN

    folder = root / "zh-cn"
    folder.mkdir(exist_ok=True)
    for chapter in chapters:
        source = DEBIAN_ZH_FAQ / DEBIAN_ZH_PATTERN.replace("*", chapter)
        if not source.is_file():
            pytest.skip(f"{source} is missing: apt-get install debian-faq-zh-cn")
        shutil.copy(source, folder / source.name)
    return folder
