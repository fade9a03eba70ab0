"""The staff dashboard in a real browser: headless Debian Chromium (Playwright) against a live ASGI server.

Signs in on the staff sign-in page, sees the charts drawn on their canvases (pixels, not
an empty frame), opens the knowledge gaps, turns a group into an FAQ entry, and checks a
later customer question (through the chat API) is answered from it. Everything is real:
database, embedder, index build (embedded mode's background thread), hybrid search.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from tests.analytics import seed
from tests.conftest import off_loop, requires_chromium, staff_member

ORIGIN = "https://shop.example"

pytestmark = [
    pytest.mark.browser,
    requires_chromium,
]






@pytest.fixture
def shop_traffic(transactional_db, embedder):
    """A day of traffic on one base: answers, cache hits, ratings, and PayPal questions nobody could answer."""
    from django.utils import timezone

    kb = seed.knowledge_base("shop")
    key = seed.widget_key(kb, "web")
    now = timezone.now()
    seed.random_traffic(bases=[kb], keys={kb.pk: [key]}, start=now - timedelta(hours=20), hours=19,
                        conversations=40)
    conversation = seed.conversation(kb, at=now - timedelta(hours=2), key=key)
    for minutes, text in enumerate(["Can I pay with PayPal?", "do you accept paypal",
                                    "Is PayPal accepted as a payment method?"]):
        seed.exchange(conversation, at=now - timedelta(hours=2, minutes=minutes), question=text, outcome="refused",
                      reason="no_relevant_passage")
    staff_member("sam", password="pw-sam-123")
    return kb, key




def painted_pixels(page, canvas_id: str) -> int:
    """Non-transparent pixels on a canvas: more than the axes means data was drawn."""
    return page.evaluate("""(id) => {
        const canvas = document.getElementById(id);
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) painted++; }
        return painted;
    }""", canvas_id)


def ask(base_url: str, key, text: str) -> dict:
    request = urllib.request.Request(f"{base_url}/api/v1/chat/messages", data=json.dumps({"text": text}).encode(),
                                     headers={"Content-Type": "application/json", "X-Kefu-Key": key.public_key,
                                              "Origin": ORIGIN}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_staff_see_drawn_charts_and_turn_a_gap_into_an_faq_that_answers(live_asgi, shop_traffic, browser,
                                                                        tmp_path):
    kb, key = shop_traffic
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # given a staff member signs in on the staff sign-in page
    page.goto(f"{live_asgi}/staff/?range=24h")
    page.fill("input[name=username]", "sam")
    page.fill("input[name=password]", "pw-sam-123")
    page.click("button:has-text('Sign in')")
    # when the dashboard opens
    page.wait_for_selector("#chart-volume[data-drawn]")
    # then every chart with data is drawn on its canvas
    for chart in ("volume", "outcomes", "intents", "ttft", "total", "feedback"):
        page.wait_for_selector(f"#chart-{chart}[data-drawn]")
        assert painted_pixels(page, f"chart-{chart}") > 2000, chart
    assert page.text_content("#headline").count("questions") >= 1
    screenshot = Path(os.environ.get("KEFU_DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    # when the knowledge gaps are opened and the PayPal group becomes an FAQ entry
    page.click("nav a:has-text('Knowledge gaps')")
    gap = page.locator("article[data-gap]", has_text="PayPal").first
    gap.locator("summary").click()
    gap.locator("textarea[name=answer]").fill("Yes, we accept PayPal for every order.")
    gap.locator("button:has-text('Add FAQ entry')").click()
    page.wait_for_selector(".flash:has-text('FAQ entry')")
    # then the base is re-indexed in the background with the entry in it
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and off_loop(lambda: type(kb).objects.get(pk=kb.pk).active_index_id) is None:
        time.sleep(0.5)
    assert off_loop(lambda: type(kb).objects.get(pk=kb.pk).active_index_id) is not None
    # and a later customer question is answered from it directly
    off_loop(lambda: type(key).objects.filter(pk=key.pk).update(allowed_origins=[ORIGIN]))
    started = ask(live_asgi, key, "Can I pay using PayPal?")
    assert started["outcome"] == "direct"
    from chat.models import Message

    assert off_loop(lambda: Message.objects.get(pk=started["message_id"]).text) == \
        "Yes, we accept PayPal for every order."
