"""Answerability on the staff pages: a histogram of stored probabilities on the dashboard, the value in a transcript."""

from __future__ import annotations

import random
from datetime import timedelta

from django.utils import timezone

from chat.models import Message
from tests.analytics import seed


def answerability_chart(response) -> dict:
    return next(chart for chart in response.context["charts"] if chart["id"] == "answerability")


def test_the_dashboard_shows_the_distribution_of_stored_answerability(staff_client, db):
    # given replies with random probabilities on two bases in the last day, replies without one, and an old one
    shop, other = seed.knowledge_base("shop"), seed.knowledge_base("other")
    key = seed.widget_key(shop, "web")
    now = timezone.now()
    rng = random.Random(5)
    stored = {shop.pk: [], other.pk: []}
    for kb in (shop, other):
        conv = seed.conversation(kb, at=now - timedelta(hours=2), key=key if kb == shop else None)
        for _ in range(40):
            _, reply = seed.exchange(conv, at=now - timedelta(hours=2))
            value = rng.choice([0.0, 1.0, rng.random()])
            Message.objects.filter(pk=reply.pk).update(answerability=value)
            stored[kb.pk].append(value)
        seed.exchange(conv, at=now - timedelta(hours=1))  # not scored: no probability
    old = seed.conversation(shop, at=now - timedelta(days=40), key=key)
    _, reply = seed.exchange(old, at=now - timedelta(days=40))
    Message.objects.filter(pk=reply.pk).update(answerability=0.5)
    # when staff open the dashboard for the last day, all bases and one base
    everything = staff_client.get("/staff/", {"range": "24h"})
    one_base = staff_client.get("/staff/", {"range": "24h", "kb": shop.pk})

    # then each bin counts the window's probabilities in it (1.0 in the last bin), per filter
    def expected(values):
        counts = [0] * 10
        for value in values:
            counts[min(int(value * 10), 9)] += 1
        return counts

    assert answerability_chart(everything)["datasets"][0]["data"] == expected(stored[shop.pk] + stored[other.pk])
    assert answerability_chart(one_base)["datasets"][0]["data"] == expected(stored[shop.pk])
    assert "Answerability of questions" in everything.content.decode()


def test_a_transcript_shows_the_probability_next_to_each_scored_reply(staff_client, db):
    shop = seed.knowledge_base("shop")
    conv = seed.conversation(shop, at=timezone.now() - timedelta(minutes=5))
    _, scored = seed.exchange(conv, at=timezone.now() - timedelta(minutes=4))
    seed.exchange(conv, at=timezone.now() - timedelta(minutes=3), question="hello again")
    Message.objects.filter(pk=scored.pk).update(answerability=0.873)
    page = staff_client.get(f"/staff/conversations/{conv.public_id}/").content.decode()
    assert page.count("answerable 0.87") == 1


def test_a_transcript_shows_the_questions_an_i_dont_know_offered(staff_client, db):
    # given a refusal that offered two FAQ questions
    shop = seed.knowledge_base("shop")
    conv = seed.conversation(shop, at=timezone.now() - timedelta(minutes=5))
    _, refused = seed.exchange(conv, at=timezone.now() - timedelta(minutes=4))
    Message.objects.filter(pk=refused.pk).update(outcome="refused", suggestions=["Do you offer a warranty?",
                                                                                 "How long is the warranty?"])
    # when staff read the conversation
    page = staff_client.get(f"/staff/conversations/{conv.public_id}/").content.decode()
    # then both offered questions are listed with the reply
    assert "Offered:" in page and "<q>Do you offer a warranty?</q>" in page and "<q>How long is the warranty?</q>" in page
