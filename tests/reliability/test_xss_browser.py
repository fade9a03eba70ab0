"""HTML/JS in questions and answers is shown as text, never run: the widget and the staff pages in Chromium.

A visitor asks through the widget with an ``<img onerror>`` and a ``javascript:`` link in the
question; the (fake) model answers with more of them; the visitor rates the answer down, asks for
a person and asks a question nobody can answer. The widget's history, and the staff pages that
show those questions and answers (knowledge gaps, down-rated answers, the inbox, the transcript,
top questions, the dashboard), must show the payloads as text: no ``window.__xss``, no element
built from them, and the text itself visible (so the check cannot pass on an empty page).
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import off_loop, requires_chromium, staff_member
from tests.reliability.conftest import BASE_A_DOCUMENTS, build_base

pytestmark = [pytest.mark.browser, requires_chromium]

QUESTION = ('Do I need a permit before drilling for a heat pump? <img src=x onerror="window.__xss=1"> '
            '[docs](javascript:window.__xss=2)')
ANSWER = ('Yes, drilling needs a permit from the municipality [1]. <img src=x onerror="window.__xss=3"> '
          '<script>window.__xss=4</script> [more](javascript:window.__xss=5) '
          '<a href="javascript:window.__xss=6">here</a> <svg onload="window.__xss=7"></svg>')
GAP_QUESTION = '<a href="javascript:window.__xss=8">Is the quantum fridge covered?</a><img src=y onerror="window.__xss=9">'

ACTIVE_ELEMENTS = """() => {
  const found = [];
  const walk = (root) => root.querySelectorAll('*').forEach((el) => {
    const href = (el.getAttribute('href') || '').trim().toLowerCase();
    const attrs = Array.from(el.attributes).map((a) => a.name);
    if ((el.tagName === 'IMG' && ['x', 'y'].includes(el.getAttribute('src'))) || href.startsWith('javascript:')
        || attrs.some((name) => name.startsWith('on')) || (el.tagName === 'SCRIPT' && el.textContent.includes('__xss'))
        || (el.tagName === 'svg' && !(el.getAttribute('aria-hidden') === 'true' && el.closest('button')))) {
      found.push(el.outerHTML.slice(0, 120));
    }
    if (el.shadowRoot) { walk(el.shadowRoot); }
  });
  walk(document);
  return found;
}"""
ALL_TEXT = """() => {
  const parts = [];
  const walk = (root) => { parts.push(root.textContent || ''); root.querySelectorAll('*').forEach((el) => {
    if (el.shadowRoot) { walk(el.shadowRoot); } }); };
  walk(document.body);
  return parts.join(' ');
}"""


def assert_shown_as_text(page, *fragments: str) -> None:
    time.sleep(0.3)  # a broken <img> fires onerror asynchronously
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate(ACTIVE_ELEMENTS) == []
    text = page.evaluate(ALL_TEXT)
    for fragment in fragments:
        assert fragment in text, (fragment, page.url)


@pytest.fixture
def xss_kb(transactional_db, embedder, live_asgi):
    """The demo page's base (set up as demo_setup does, allowing the live server's origin)."""
    from tests.chat.demo_page import as_demo_base

    return as_demo_base(build_base("Nordbygg", BASE_A_DOCUMENTS), origin=live_asgi)


@pytest.fixture
def payload_answer(fake_generator):
    fake_generator.answer = ANSWER
    return fake_generator


def test_payloads_in_questions_and_answers_are_never_rendered_as_html(live_asgi, xss_kb, payload_answer, browser,
                                                                       django_user_model):
    from chat.models import Conversation, Feedback

    page = browser.new_page()
    page.goto(f"{live_asgi}/api/v1/chat/demo/")
    page.click(".launcher")
    # when the visitor asks with a payload and gets a generated answer full of payloads
    page.fill("textarea", QUESTION)
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg.assistant[data-outcome='answered'] .thumbs .down", timeout=30_000)
    assert_shown_as_text(page, 'onerror="window.__xss=1"', 'onerror="window.__xss=3"', "<script>window.__xss=4")
    # and rates it down, asks for a person, and asks what nobody can answer
    page.click(".msg.assistant .thumbs .down")
    page.wait_for_selector(".thanks")
    page.click(".human")
    page.wait_for_selector(".msg.assistant[data-outcome='handed_off']", timeout=30_000)
    page.fill("textarea", GAP_QUESTION)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#kefu-widget').shadowRoot"
                           ".querySelectorAll('.msg.assistant[data-outcome]:not(.streaming)').length >= 3",
                           timeout=30_000)
    assert off_loop(lambda: Feedback.objects.get().rating) == "down"
    # then the widget's history after a reload shows every payload as text
    page.reload()
    page.click(".launcher")
    page.wait_for_selector(".msg.user >> nth=1")
    page.wait_for_selector(".msg.assistant[data-outcome='answered']")
    assert_shown_as_text(page, 'onerror="window.__xss=1"', "[docs](javascript:window.__xss=2)",
                         'onerror="window.__xss=3"', "[more](javascript:window.__xss=5)",
                         'href="javascript:window.__xss=8"')
    # and so does every staff page that shows them (top questions come from the rollup beat runs in service mode)
    from analytics import tasks

    off_loop(tasks.rollup)
    conversation_id = off_loop(lambda: Conversation.objects.get().public_id)
    off_loop(lambda: staff_member("sam", password="pw-sam-12345"))
    staff = browser.new_page()
    staff.goto(f"{live_asgi}/staff/login/")
    staff.fill("input[name=username]", "sam")
    staff.fill("input[name=password]", "pw-sam-12345")
    staff.click("form button, form input[type=submit]")
    staff.wait_for_url(f"{live_asgi}/staff/")
    pages = {
        "/staff/conversations/" + conversation_id + "/": ('onerror="window.__xss=1"', 'onerror="window.__xss=3"',
                                                          'href="javascript:window.__xss=8"'),
        "/staff/feedback/": ('onerror="window.__xss=1"', 'onerror="window.__xss=3"'),
        "/staff/gaps/": ('onerror="window.__xss=9"',),
        "/staff/inbox/": (),
        "/staff/questions/": ('onerror="window.__xss=1"',),
        "/staff/": (),
    }
    for path, fragments in pages.items():
        staff.goto(live_asgi + path)
        assert_shown_as_text(staff, *fragments)
