"""The widget for a Chinese customer, in a real browser with a zh-CN locale (headless Debian Chromium,
Playwright) against a live ASGI server: its own words, Kefu's refusal and hand-off, and the rate-limit
notice are Chinese, and the questions are stored as Chinese. Screenshots: tests/browser_artifacts.py."""

from __future__ import annotations

import re

import pytest

from chat.pipeline.replies import REPLIES
from tests.browser_artifacts import artifacts_dir, screenshot
from tests.conftest import off_loop, requires_chromium

pytestmark = [pytest.mark.browser, requires_chromium]


@pytest.fixture
def nordbygg_kb(transactional_db, embedder, live_asgi, settings):
    """The demo page's base, with a sensitive word, and a per-client budget of two questions a minute."""
    from chat.models import ChatProfile
    from tests.chat.conftest import build_support_kb
    from tests.chat.demo_page import as_demo_base

    kb = as_demo_base(build_support_kb("Nordbygg"), origin=live_asgi)
    ChatProfile.objects.update_or_create(knowledge_base=kb, defaults={"sensitive_words": "保险箱密码"})
    settings.KEFU_CHAT_RATE_LIMITS = {**settings.KEFU_CHAT_RATE_LIMITS, "ip": (2, 60)}
    return kb


def test_a_chinese_customer_gets_chinese_words_refusals_and_notices(live_asgi, nordbygg_kb, fake_generator,
                                                                      browser):
    from chat.models import Message

    folder = artifacts_dir("zh-CN")
    context = browser.new_context(locale="zh-CN", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    # given the demo page in a Chinese browser
    page.goto(f"{live_asgi}/chat/demo/")
    assert page.get_attribute("html", "lang") == "zh-hans"
    page.click(".launcher")
    # then the widget speaks Chinese before anything is asked
    assert page.get_attribute(".launcher", "aria-label") == "在线咨询"
    assert page.get_attribute("textarea", "placeholder") == "请输入您的问题…"
    assert page.text_content(".panel header h2") == "在线客服" and page.text_content("button.human") == "转人工"
    page.wait_for_selector(".msg.notice:has-text('您好！有什么可以帮您？')")
    # when a question with a sensitive word is asked in Chinese
    page.fill("textarea", "请告诉我保险箱密码")
    page.keyboard.press("Enter")
    # then Kefu's refusal is the Chinese one
    refusal = page.locator(".msg.assistant[data-outcome='refused'] .body").first
    refusal.wait_for()
    assert refusal.text_content() == REPLIES["sensitive_word"]["zh"]
    page.wait_for_selector("form.ask button[type=submit]:not([disabled])")
    # when the customer asks again, and then once more over the budget of two a minute
    page.fill("textarea", "保险箱密码是多少？")
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg.assistant[data-outcome='refused'] >> nth=1")
    page.wait_for_selector("form.ask button[type=submit]:not([disabled])")
    page.fill("textarea", "为什么不回答？")
    page.keyboard.press("Enter")
    # then the rate-limit notice is Chinese, with the seconds to wait
    limited = page.locator(".msg.notice", has_text="发送太频繁")
    limited.wait_for()
    assert re.fullmatch(r"发送太频繁，请 \d+ 秒后再试。", limited.locator(".body").text_content())
    # when the customer asks for a person
    page.wait_for_selector("button.human:not([disabled])")
    page.click("button.human")
    # then the hand-off notice is Kefu's Chinese one
    handoff = page.locator(".msg.assistant[data-outcome='handed_off'] .body")
    handoff.wait_for()
    assert handoff.text_content() == REPLIES["handoff"]["zh"]
    screenshot(page, folder, "widget-refusal-limit-handoff")
    # and the two questions that were answered are stored as Chinese
    assert off_loop(lambda: list(Message.objects.filter(role="user").values_list("language", flat=True))) == [
        "zh", "zh"]
    context.close()


def test_data_lang_wins_over_the_browser_and_the_page(live_asgi, nordbygg_kb, fake_generator, browser):
    # given the same page in an English browser, the widget tag saying data-lang="zh"
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(f"{live_asgi}/chat/demo/")
    assert page.get_attribute("html", "lang") == "en"
    page.evaluate("""() => {
        document.getElementById('kefu-widget').remove();
        const old = document.querySelector('script[data-key]');
        const tag = document.createElement('script');
        tag.src = old.src + '?lang-test'; tag.setAttribute('data-key', old.getAttribute('data-key'));
        tag.setAttribute('data-lang', 'zh');
        document.body.appendChild(tag);
    }""")
    # then the widget it adds speaks Chinese
    page.wait_for_selector(".launcher[aria-label='在线咨询']")
    assert page.get_attribute("textarea", "placeholder") == "请输入您的问题…"
    context.close()
