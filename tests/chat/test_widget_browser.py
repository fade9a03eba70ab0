"""The widget in a real browser: headless Debian Chromium (Playwright) against a live ASGI server.

uvicorn serves the project's ASGI application from a thread of this process (so the fake
generator — the only stand-in — streams tokens slowly enough to watch them arrive), over
the real test database, embedder and hybrid search.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import off_loop, requires_chromium

pytestmark = [
    pytest.mark.browser,
    requires_chromium,
]




@pytest.fixture
def slow_generator(fake_generator):
    """The fake worker writes one token every 250 ms from a thread, like a (slow) real decoder.

    Slow enough that the page, polled every 30 ms, sees partial texts on a loaded machine too.
    """
    fake_generator.write_immediately = False
    real_start = fake_generator.start

    def start(**kwargs):
        job_id = real_start(**kwargs)

        def write():
            from inference.outcomes import GenerationDone
            from inference.stream import open_stream, write_done, write_token

            stream = open_stream(job_id)
            time.sleep(0.3)
            # (the first 40 characters arrive together once the output gate passed them; the rest one by one)
            for piece in ["A ground", " source heat", " pump needs", " a drilling", " permit", " from", " the",
                          " municipality", " [1]."]:
                write_token(stream, piece)
                time.sleep(0.25)
            write_done(stream, GenerationDone(
                text="A ground source heat pump needs a drilling permit from the municipality [1].",
                prompt_tokens=90, completion_tokens=15, queue_ms=1.0, ttft_ms=300.0, tokens_per_s=8.0))

        threading.Thread(target=write, daemon=True).start()
        return job_id

    fake_generator.start = start
    from chat import generation

    generation.generation_start = start
    return fake_generator




@pytest.fixture
def nordbygg_kb(transactional_db, embedder, live_asgi):
    """The base of the demo page (set up as demo_setup does, allowing the live server's origin)."""
    from tests.chat.conftest import build_support_kb
    from tests.chat.demo_page import as_demo_base

    return as_demo_base(build_support_kb("Nordbygg"), origin=live_asgi)




def test_ask_watch_tokens_see_a_citation_rate_and_find_the_history_after_reload(live_asgi, nordbygg_kb,
                                                                                 slow_generator, browser):
    from chat.models import Feedback

    page = browser.new_page()
    # given the demo page with the widget
    page.goto(f"{live_asgi}/api/v1/chat/demo/")
    page.click(".launcher")
    # when a question from the base is asked
    page.fill("textarea", "Do I need a permit before drilling for a ground source heat pump?")
    page.keyboard.press("Enter")
    # then tokens arrive one after another (several partial texts are seen while streaming)
    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        streaming = page.query_selector(".msg.assistant.streaming .body")
        if streaming is not None:
            seen.add(streaming.text_content())
        if page.query_selector(".msg.assistant .sources") is not None:
            break
        time.sleep(0.03)
    partials = {text for text in seen if text.startswith("A ground") and not text.endswith("[1].")}
    assert len(partials) >= 2, seen
    # and the answer is complete, with a citation to the document
    answer = page.text_content(".msg.assistant[data-outcome='answered'] .body")
    assert "drilling permit" in answer and "[1]" in answer
    page.click(".msg.assistant .sources summary")
    assert "services.md" in page.text_content(".msg.assistant .sources") or "Heat pumps" in page.text_content(
        ".msg.assistant .sources")
    # when the answer is rated
    page.click(".msg.assistant .thumbs .up")
    page.wait_for_selector(".thanks")
    assert off_loop(lambda: Feedback.objects.get().rating) == "up"
    # and the page is reloaded, the history is there
    page.reload()
    page.click(".launcher")
    page.wait_for_selector(".msg.user")
    assert page.text_content(".msg.user .body") == "Do I need a permit before drilling for a ground source heat pump?"
    page.wait_for_selector(".msg.assistant .thumbs .up[aria-pressed='true']")
    assert "drilling permit" in page.text_content(".msg.assistant[data-outcome='answered'] .body")
    # and the panel is keyboard-operable: Escape closes it and focus returns to the launcher
    page.focus("textarea")
    page.keyboard.press("Escape")
    assert page.get_attribute(".panel", "hidden") is not None
    assert page.get_attribute(".launcher", "aria-expanded") == "false"


def other_site(html: str) -> str:
    """A second real server on loopback (another port, so another origin) serving one page."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def shop_key(nordbygg_kb):
    from chat.models import WidgetKey

    return WidgetKey.objects.create(knowledge_base=nordbygg_kb, name="shop",
                                    allowed_origins=["https://shop.example.com"])


def test_a_page_on_another_origin_gets_no_answer(live_asgi, shop_key, fake_generator, browser):
    from chat.models import Message

    key = shop_key
    page = browser.new_page()
    # given a page on an origin the key does not allow, embedding the widget from the live server
    html = (f'<html lang="en"><body><h1>Other site</h1><script src="{live_asgi}/static/chat/widget.js" '
            f'data-key="{key.public_key}" async></script></body></html>')
    other = other_site(html)
    page.goto(other)
    page.click(".launcher")
    # when a question is asked
    page.fill("textarea", "What are your opening hours?")
    page.keyboard.press("Enter")
    # then the browser's CORS check fails the request (the server refused the preflight), the widget says
    # so, no answer appears, and nothing was stored
    page.wait_for_selector(".msg.notice:has-text('something went wrong')")
    assert page.query_selector(".msg.assistant") is None
    assert not off_loop(Message.objects.exists)


def test_a_staff_reply_appears_in_the_open_widget_without_a_reload(live_asgi, nordbygg_kb, fake_generator, browser):
    from chat.models import Conversation
    from chat.staff_replies import staff_reply_send

    page = browser.new_page()
    # given a customer who asked for a person in the widget on the demo page
    page.goto(f"{live_asgi}/api/v1/chat/demo/")
    page.click(".launcher")
    page.fill("textarea", "I want to talk to a person")
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg.assistant[data-outcome='handed_off']")
    # when a staff member answers from the hand-off inbox
    conversation = off_loop(lambda: Conversation.objects.get(status=Conversation.Status.HANDED_OFF))
    off_loop(lambda: staff_reply_send(conversation=conversation, text="Hello, this is Anna from Nordbygg."))
    # then the reply shows up once in the open panel, without a reload
    page.wait_for_selector(".msg.assistant.staff:has-text('Anna from Nordbygg')", timeout=15000)
    assert len(page.query_selector_all(".msg.assistant.staff")) == 1
    # and after a reload it is in the history, not pushed a second time
    page.reload()
    page.click(".launcher")
    page.wait_for_selector(".msg.assistant:has-text('Anna from Nordbygg')")
    time.sleep(1.5)  # three live-stream polls
    assert len(page.query_selector_all(".msg.assistant:has-text('Anna from Nordbygg')")) == 1


def test_an_i_dont_know_offers_related_questions_that_ask_with_one_click(live_asgi, nordbygg_kb, fake_generator,
                                                                          browser, monkeypatch):
    from chat.pipeline import extractive

    # given a base whose passages say nothing about the question (so Kefu does not know)
    monkeypatch.setattr(extractive, "has_support", lambda **kwargs: False)
    page = browser.new_page()
    page.goto(f"{live_asgi}/api/v1/chat/demo/")
    page.click(".launcher")
    # when the customer asks in words the base misses
    page.fill("textarea", "Is there any warranty when you renovate my kitchen?")
    page.keyboard.press("Enter")
    # then the "I don't know" offers the base's closest FAQ question as a button
    button = page.wait_for_selector(".msg.assistant[data-outcome='refused'] .related button")
    assert button.text_content() == "Do you offer a warranty on renovation work?"
    # when the customer clicks it, it is asked, and answered from the FAQ
    button.click()
    page.wait_for_selector(".msg.assistant[data-outcome='direct']")
    assert page.text_content(".msg.user >> nth=1") == "Do you offer a warranty on renovation work?"
    assert "five-year warranty" in page.text_content(".msg.assistant[data-outcome='direct'] .body")
    # and the question remembers the refusal it was taken from (staff confirm it on the feedback page)
    from chat.models import Message
    taken_from = off_loop(lambda: Message.objects.select_related("taken_from__reply_to").get(
        role="user", text="Do you offer a warranty on renovation work?").taken_from.reply_to.text)
    assert taken_from == "Is there any warranty when you renovate my kitchen?"
    # and after a reload the offer is still there
    page.reload()
    page.click(".launcher")
    page.wait_for_selector(".msg.assistant[data-outcome='refused'] .related button")
