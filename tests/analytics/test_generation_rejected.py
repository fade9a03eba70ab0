"""The dashboard's "generation rejected" tile: generated replies the output gate replaced, per window and filter."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tests.analytics import seed


def test_the_dashboard_counts_replies_the_output_gate_rejected(staff_client, db):
    # given, in the last day, two replies the gate rejected on one base, one on another, a plain refusal,
    # an answered reply, and a rejected one from last month
    shop, other = seed.knowledge_base("shop"), seed.knowledge_base("other")
    key = seed.widget_key(shop, "web")
    now = timezone.now()
    conv = seed.conversation(shop, at=now - timedelta(hours=3), key=key)
    for _ in range(2):
        seed.exchange(conv, at=now - timedelta(hours=3), outcome="refused", reason="generation_rejected")
    seed.exchange(conv, at=now - timedelta(hours=2), outcome="refused", reason="no_relevant_passage")
    seed.exchange(conv, at=now - timedelta(hours=2), outcome="answered", reason="generated")
    seed.exchange(seed.conversation(other, at=now - timedelta(hours=1)), at=now - timedelta(hours=1),
                  outcome="refused", reason="generation_rejected")
    old = seed.conversation(shop, at=now - timedelta(days=40), key=key)
    seed.exchange(old, at=now - timedelta(days=40), outcome="refused", reason="generation_rejected")
    # when staff open the dashboard for the last day, for all bases, one base, and one widget key
    everything = staff_client.get("/staff/", {"range": "24h"})
    one_base = staff_client.get("/staff/", {"range": "24h", "kb": shop.pk})
    one_key = staff_client.get("/staff/", {"range": "24h", "key": key.pk})
    # then the tile counts the rejected replies (not their questions) of the window and filter
    assert everything.context["data"].headline.generation_rejected == 3
    assert one_base.context["data"].headline.generation_rejected == 2
    assert one_key.context["data"].headline.generation_rejected == 2
    assert "generation rejected" in everything.content.decode()
    # and all of them are among the refusals of the outcome chart
    assert everything.context["data"].headline.refusal_rate == 4 / 5
