"""Staff pages for a Chinese staff member, in a real browser with a zh-CN locale (headless Debian Chromium,
Playwright) against a live ASGI server: sign-in, the dashboard with the customers' language mix, the
hand-off inbox, the conversation view and the /kb/ pages show Chinese labels, and the switcher turns them
English. Screenshots of each page are kept (tests/browser_artifacts.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat.models import Message
from tests.analytics import seed
from tests.browser_artifacts import artifacts_dir, screenshot
from tests.conftest import requires_chromium, staff_member

pytestmark = [pytest.mark.browser, requires_chromium]


@pytest.fixture
def shop(transactional_db):
    """A base with a few hours of questions in Chinese, English and German, one conversation waiting for a person."""
    from django.utils import timezone

    kb = seed.knowledge_base("shop")
    key = seed.widget_key(kb, "web")
    now = timezone.now()
    for hours, text, language in [(3, "怎么退货？", "zh"), (3, "退货要多久？", "zh"), (2, "运费多少？", "zh"),
                                  (2, "How do I return an item?", "en"), (1, "Wie lange dauert die Lieferung?", "de")]:
        conversation = seed.conversation(kb, at=now - timedelta(hours=hours), key=key)
        asked, _ = seed.exchange(conversation, at=now - timedelta(hours=hours), question=text)
        Message.objects.filter(pk=asked.pk).update(language=language)
    waiting = seed.conversation(kb, at=now - timedelta(hours=1), key=key, status="handed_off")
    asked, _ = seed.exchange(waiting, at=now - timedelta(hours=1), question="我要找人工客服", outcome="handed_off")
    Message.objects.filter(pk=asked.pk).update(language="zh")
    # a refusal that offered an FAQ question, which the customer took
    from kb.models import FaqEntry
    entry = FaqEntry.objects.create(knowledge_base=kb, question="退货政策是什么？", answer="三十天内可退货。")
    offered = seed.conversation(kb, at=now - timedelta(hours=1), key=key)
    _asked, refusal = seed.exchange(offered, at=now - timedelta(hours=1), question="我能把坏掉的杯子寄回去吗？",
                                    outcome="refused", reason="no_relevant_passage")
    Message.objects.filter(pk=refusal.pk).update(suggestions=[entry.question])
    Message.objects.create(conversation=offered, role="user", text=entry.question, taken_from=refusal,
                           outcome="direct", language="zh")
    staff_member("lin", password="pw-lin-123")
    return kb, waiting


def text_of(page) -> str:
    return page.inner_text("body")


def test_staff_pages_speak_chinese_to_a_chinese_browser(live_asgi, shop, browser):
    kb, waiting = shop
    folder = artifacts_dir("zh-CN")
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    # given a staff member whose browser is set to Chinese opens the dashboard
    page.goto(f"{live_asgi}/staff/?range=24h")
    # then the sign-in page is Chinese (Kefu's words and Django's own form labels)
    assert page.get_attribute("html", "lang") == "zh-hans"
    assert "员工登录" in text_of(page) and "用户名" in text_of(page) and "密码" in text_of(page)
    screenshot(page, folder, "staff-sign-in")
    page.fill("input[name=username]", "lin")
    page.fill("input[name=password]", "pw-lin-123")
    page.click("main button:has-text('登录')")
    # when the dashboard opens
    page.wait_for_selector("#headline")
    body = text_of(page)
    # then its labels, filters and navigation are Chinese, and the language mix counts the questions
    for words in ("仪表盘", "知识缺口", "转人工收件箱", "热门问题", "会话", "独立访客", "最近 24 小时", "应用", "客户语言"):
        assert words in body, words
    mix = {row.get_attribute("data-language"): row.inner_text()
           for row in page.query_selector_all("#languages tr[data-language]")}
    assert mix["zh"].split("\t")[:2] == ["中文", "5"] and mix["en"].split("\t")[:2] == ["英语", "1"]
    assert mix["de"].split("\t")[:2] == ["德语", "1"]
    assert "Knowledge gaps" not in body and "Sign out" not in body
    screenshot(page, folder, "staff-dashboard")
    # and the hand-off inbox and the conversation it opens
    page.click("nav a:has-text('转人工收件箱')")
    page.wait_for_selector("#inbox")
    assert "等待人工处理的会话" in text_of(page) and "我要找人工客服" in text_of(page)
    screenshot(page, folder, "staff-inbox")
    page.click("#inbox a:has-text('打开')")
    page.wait_for_selector(".transcript")
    assert "会话" in text_of(page) and "已转人工" in text_of(page) and "回复客户" in text_of(page)
    assert page.inner_text(".transcript .language") == "中文"  # the customer's language, in the staff's
    screenshot(page, folder, "staff-conversation")
    # and the feedback page, with the offered question a customer took, to confirm with one click
    page.goto(f"{live_asgi}/staff/feedback/?range=24h")
    for words in ("客户点选的推荐问题", "未回答：", "我能把坏掉的杯子寄回去吗？", "点选：", "确认：它回答了这个问题"):
        assert words in text_of(page), words
    screenshot(page, folder, "staff-feedback")
    # and the knowledge-base pages: list, detail (regression gate, tuning, upload), FAQ, try a query
    page.click("nav a:has-text('知识库')")
    page.wait_for_selector("table.kb-table")
    assert "新建知识库" in text_of(page) and "分块大小" in text_of(page)
    screenshot(page, folder, "kb-list")
    page.goto(f"{live_asgi}/kb/{kb.slug}/")
    for words in ("回归门禁", "向量模型", "术语表", "上传", "文档", "重建搜索索引", "还没有文档。"):
        assert words in text_of(page), words
    screenshot(page, folder, "kb-detail")
    page.goto(f"{live_asgi}/kb/{kb.slug}/faq/")
    assert "导入表格" in text_of(page) and "新建条目" in text_of(page)
    screenshot(page, folder, "kb-faq")
    page.goto(f"{live_asgi}/kb/{kb.slug}/search")
    assert "试一试查询" in text_of(page)
    # when the staff member picks English in the switcher
    page.select_option("#language-select", "en")
    page.wait_for_selector("html[lang='en']")
    # then the same page comes back in English, and stays English
    assert "Try a query" in text_of(page)
    page.goto(f"{live_asgi}/staff/?range=24h")
    assert "Knowledge gaps" in text_of(page) and "English" in page.inner_text("#languages")
    context.close()
