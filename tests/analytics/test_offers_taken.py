"""The dashboard's "offers taken" tile: of the refusals that offered questions, how many customers took one."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from chat.models import Message
from tests.analytics import seed


def offer(conv, at, *, taken: bool) -> None:
    _question, refusal = seed.exchange(conv, at=at, question="do you fix boats?", outcome="refused",
                                       reason="no_relevant_passage")
    Message.objects.filter(pk=refusal.pk).update(suggestions=["Which repairs do you do?"])
    if taken:
        Message.objects.create(conversation=conv, role="user", text="Which repairs do you do?", taken_from=refusal,
                               outcome="answered")


def test_the_dashboard_shows_how_many_offered_questions_customers_took(staff_client, db):
    # given, in the last day, three refusals that offered questions on one base (two taken), one on another
    # (taken), and a refusal that offered nothing
    shop, other = seed.knowledge_base("shop"), seed.knowledge_base("other")
    now = timezone.now()
    conv = seed.conversation(shop, at=now - timedelta(hours=3))
    for taken in (True, True, False):
        offer(conv, now - timedelta(hours=2), taken=taken)
    offer(seed.conversation(other, at=now - timedelta(hours=1)), now - timedelta(hours=1), taken=True)
    seed.exchange(conv, at=now - timedelta(hours=1), outcome="refused", reason="no_relevant_passage")
    # when staff open the dashboard for all bases and for one
    everything = staff_client.get("/staff/", {"range": "24h"})
    one_base = staff_client.get("/staff/", {"range": "24h", "kb": shop.pk})
    # then the tile counts the offers and the questions taken from them, in the filter
    headline = everything.context["data"].headline
    assert (headline.offers_made, headline.offers_taken, headline.offers_taken_share) == (4, 3, 0.75)
    assert (one_base.context["data"].headline.offers_made, one_base.context["data"].headline.offers_taken) == (3, 2)
    assert "offers taken (3 of 4)" in everything.content.decode()


def test_without_offers_the_tile_shows_a_dash(staff_client, db):
    page = staff_client.get("/staff/", {"range": "24h"})
    assert page.context["data"].headline.offers_taken_share is None
    assert "offers taken (0 of 0)" in page.content.decode()
