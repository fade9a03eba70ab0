"""The Chinese demo (issue 15, item 5): ``demo_setup`` builds a second base from Debian's Chinese FAQ with its own
widget key, /chat/demo/zh/ serves the widget tagged data-lang="zh" in a Chinese page, re-runs change nothing,
and without the package the Chinese base is skipped in one line while the English demo still works."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.chat.demo_page import zh_faq_subset


@pytest.fixture(autouse=True)
def demo_rows(settings, monkeypatch):
    """Six rows of the English demo FAQ (the English base is built by every demo_setup run)."""
    from kb.demo import faq_rows

    rows = faq_rows()[:6]
    monkeypatch.setattr("kb.demo.faq_rows", lambda: rows)
    settings.ALLOWED_HOSTS = ["testserver"]


def demo_setup() -> str:
    out = io.StringIO()
    call_command("demo_setup", "--no-tune", "--origin", "http://testserver", stdout=out)
    return out.getvalue()


def test_demo_setup_builds_both_bases_and_the_chinese_page_serves_a_chinese_widget(db, embedder, client,
                                                                                     monkeypatch, tmp_path):
    from chat.models import ChatProfile, WidgetKey
    from chat.services import demo_knowledge_base
    from kb.demo import DEMO_SLUG, DEMO_ZH_SLUG
    from kb.models import KnowledgeBase

    # given Debian's Chinese FAQ (two chapters of it)
    monkeypatch.setattr("kb.demo.DEBIAN_ZH_FAQ", zh_faq_subset(tmp_path))
    # when demo_setup runs
    first = demo_setup()
    # then both demo bases are indexed, each with a chat profile and its own widget key
    english, chinese = demo_knowledge_base(DEMO_SLUG), demo_knowledge_base(DEMO_ZH_SLUG)
    assert english is not None and chinese is not None and chinese.languages == "zh"
    keys = {key.knowledge_base.slug: key for key in WidgetKey.objects.select_related("knowledge_base")}
    assert set(keys) == {DEMO_SLUG, DEMO_ZH_SLUG} and keys[DEMO_SLUG].public_key != keys[DEMO_ZH_SLUG].public_key
    assert "http://testserver" in keys[DEMO_ZH_SLUG].allowed_origins
    assert ChatProfile.objects.filter(knowledge_base=chinese).exists() and "ready: 2 documents" in first
    # when an English-speaking visitor opens the Chinese page
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/chat/demo/zh/", HTTP_ACCEPT_LANGUAGE="en")
    page = response.content.decode()
    # then it embeds the Chinese base's key with data-lang="zh", in a Chinese page, and wrote nothing
    assert response.status_code == 200 and '<html lang="zh-CN">' in page
    assert f'data-key="{keys[DEMO_ZH_SLUG].public_key}" data-lang="zh"' in page
    assert keys[DEMO_SLUG].public_key not in page and "Debian 帮助中心" in page
    assert not [q for q in queries.captured_queries if q["sql"].lstrip().lower().startswith(("insert", "update"))]
    # and the English page keeps the English base's key, without a forced language
    english_page = client.get("/chat/demo/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert keys[DEMO_SLUG].public_key in english_page and 'data-lang="zh"' not in english_page
    # when demo_setup runs again, nothing new is made
    second = demo_setup()
    assert "already present: 2 documents" in second
    assert WidgetKey.objects.count() == 2 and KnowledgeBase.objects.filter(slug=DEMO_ZH_SLUG).count() == 1
    assert chinese.documents.count() == 2


def test_without_the_chinese_faq_demo_setup_says_so_and_the_english_demo_still_works(db, embedder, client,
                                                                                      monkeypatch, tmp_path):
    from chat.services import demo_knowledge_base
    from kb.demo import DEMO_ZH_SLUG

    # given no debian-faq-zh-cn
    monkeypatch.setattr("kb.demo.DEBIAN_ZH_FAQ", tmp_path / "absent")
    # when demo_setup runs / then one line says the Chinese demo is skipped, and it does not fail
    output = demo_setup()
    assert [line for line in output.splitlines() if "Chinese demo skipped" in line and "debian-faq-zh-cn" in line]
    assert demo_knowledge_base(DEMO_ZH_SLUG) is None and demo_knowledge_base() is not None
    # and the Chinese page says what to run, the English one serves
    response = client.get("/chat/demo/zh/")
    assert response.status_code == 503 and b"demo_setup" in response.content
    assert client.get("/chat/demo/").status_code == 200
