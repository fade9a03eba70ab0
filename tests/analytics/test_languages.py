"""The dashboard's language mix: questions of the window per stored language, checked against the raw rows."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.filters import dashboard_filter_parse
from analytics.selectors.languages import language_mix
from chat.models import Message
from tests.analytics import seed


@pytest.fixture
def traffic(db):
    """Two bases; questions in five languages (and some stored before detection) inside and outside 24 h."""
    rng = random.Random(15)
    now = timezone.now()
    shop, help_desk = seed.knowledge_base("shop"), seed.knowledge_base("help")
    for kb in (shop, help_desk):
        for index in range(40):
            at = now - timedelta(hours=rng.choice([1, 5, 20, 30, 50]), minutes=index)
            conv = seed.conversation(kb, at=at)
            asked, _ = seed.exchange(conv, at=at)
            Message.objects.filter(pk=asked.pk).update(language=rng.choice(["zh", "zh", "en", "de", "ja", ""]))
    return shop, help_desk, now


def test_the_mix_matches_a_count_of_the_questions_in_the_window(traffic):
    shop, _, now = traffic
    for query in ({"range": "24h"}, {"range": "7d"}, {"range": "24h", "kb": str(shop.pk)}):
        flt = dashboard_filter_parse(query)
        rows = Message.objects.filter(role="user", created_at__gte=flt.start, created_at__lt=flt.end)
        if flt.knowledge_base_id:
            rows = rows.filter(conversation__knowledge_base_id=flt.knowledge_base_id)
        expected = Counter(rows.values_list("language", flat=True))
        mix = language_mix(flt)
        assert {row.code: row.questions for row in mix} == dict(expected)
        assert [row.questions for row in mix] == sorted((row.questions for row in mix), reverse=True)
        assert sum(row.share for row in mix) == pytest.approx(1.0)


def test_the_dashboard_shows_the_mix_in_the_staff_members_language(staff_client, traffic):
    english = staff_client.get("/staff/", {"range": "7d"}).content.decode()
    chinese = staff_client.get("/staff/", {"range": "7d"}, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert 'id="languages"' in english and "Chinese" in english and "not detected" in english
    assert "客户语言" in chinese and "<td>中文</td>" in chinese and "<td>德语</td>" in chinese


def test_a_window_without_questions_says_so(staff_client, db):
    assert "No questions in this window." in staff_client.get("/staff/", {"range": "24h"}).content.decode()
