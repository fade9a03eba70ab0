"""The interface in English and Simplified Chinese: complete catalogs, compiled fresh, and pages that use them.

The catalog check re-extracts every message from a copy of the sources with Django's ``makemessages``
(GNU xgettext, which .ci/run installs) and merges it into the committed catalog, as a developer would:
a new string comes out untranslated (or fuzzy, when msgmerge guesses from a near one), a removed
string leaves a stale entry behind. Either fails here, with the messages named.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from kefu.catalogs import Entry, mo_bytes, po_entries
from tests.conftest import ROOT, staff_member

CATALOG = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
# What makemessages reads: the apps' Python and the templates (the widget carries its own two languages).
SOURCES = ("manage.py", "kefu", "kb", "chat", "inference", "analytics", "templates", "locale")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


def key(entry: Entry) -> tuple:
    return entry.msgctxt, entry.msgid, entry.msgid_plural


def live(entries: list[Entry]) -> list[Entry]:
    """The messages of a catalog: not its header, not obsolete (#~) entries."""
    return [e for e in entries if e.msgid and not e.obsolete]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> list[Entry]:
    """The committed catalog merged with what the sources say now (makemessages on a copy of them)."""
    if shutil.which("xgettext") is None:
        if os.environ.get("CI"):
            pytest.fail("xgettext is missing: .ci/run installs gettext")
        pytest.skip("GNU gettext (xgettext) is not installed: apt-get install gettext")
    copy = tmp_path_factory.mktemp("sources")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy(source, copy / name)
    subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-location", "--no-obsolete",
                    "-v", "0"], cwd=copy, check=True, timeout=300, env={**os.environ, "PYTHONPATH": str(copy)})
    return po_entries(copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")


def test_every_message_of_the_sources_is_translated_and_none_is_fuzzy(extracted):
    # given the catalog merged with the sources / then no message lacks a translation or is a guess
    untranslated = [e.msgid for e in live(extracted) if not e.translated]
    fuzzy = [e.msgid for e in live(extracted) if e.fuzzy]
    assert untranslated == [], f"untranslated in {CATALOG.relative_to(ROOT)}: {untranslated}"
    assert fuzzy == [], f"fuzzy in {CATALOG.relative_to(ROOT)}: {fuzzy}"


def test_the_committed_catalog_has_no_stale_or_missing_message(extracted):
    # given the committed catalog / then it holds exactly the messages the sources use, none fuzzy or obsolete
    committed = po_entries(CATALOG)
    assert sorted(map(key, live(committed))) == sorted(map(key, live(extracted)))
    assert [e.msgid for e in committed if e.obsolete or (e.fuzzy and e.msgid)] == []
    assert [e.msgid for e in live(committed) if not e.translated] == []


def test_translations_keep_every_placeholder():
    # given each translated message / then its %(name)s and {name} placeholders are the source's
    for entry in live(po_entries(CATALOG)):
        wanted = sorted(PLACEHOLDER.findall(entry.msgid))
        for text in entry.msgstr:
            assert sorted(PLACEHOLDER.findall(text)) == wanted, entry.msgid


def test_the_compiled_catalog_is_fresh():
    # given `make install` compiled the catalog (kefu.catalogs) / then the .mo is what the .po compiles to now
    mo = CATALOG.with_suffix(".mo")
    assert mo.exists(), "locale/zh_Hans/LC_MESSAGES/django.mo is missing: run `make install` (python -m kefu.catalogs)"
    assert mo.read_bytes() == mo_bytes(po_entries(CATALOG)), "django.mo is stale: run `make install`"


def test_the_compiler_agrees_with_msgfmt(tmp_path):
    # given Django's own Chinese catalog (plurals, contexts, long entries) compiled by msgfmt and by kefu.catalogs
    import gettext

    import django

    if shutil.which("msgfmt") is None:
        pytest.skip("GNU gettext (msgfmt) is not installed")
    po = Path(django.__file__).parent / "conf" / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    subprocess.run(["msgfmt", "-o", str(tmp_path / "ref.mo"), str(po)], check=True)
    (tmp_path / "ours.mo").write_bytes(mo_bytes(po_entries(po)))
    # when both are loaded / then they hold the same messages (msgfmt drops one header line, POT-Creation-Date)
    with open(tmp_path / "ref.mo", "rb") as ref, open(tmp_path / "ours.mo", "rb") as ours:
        expected, got = gettext.GNUTranslations(ref)._catalog, gettext.GNUTranslations(ours)._catalog
    assert len(got) == len(expected) > 300
    assert {k: v for k, v in got.items() if k} == {k: v for k, v in expected.items() if k}


@pytest.fixture
def analyst(client, db):
    client.force_login(staff_member("lin", password="pw-lin-123"))
    return client


@pytest.mark.parametrize("url, words", [
    ("/staff/", ["仪表盘", "知识缺口", "转人工收件箱", "客户语言", "访问量", "最近 24 小时"]),
    ("/staff/gaps/", ["知识缺口", "此时间段内没有知识缺口。"]),
    ("/staff/inbox/", ["转人工收件箱", "目前没有人在等待人工客服。"]),
    ("/staff/questions/", ["热门问题"]),
    ("/staff/feedback/", ["差评回答"]),
    ("/kb/", ["知识库", "新建知识库", "分块大小", "创建"]),
])
def test_a_chinese_browser_gets_the_staff_pages_in_chinese(analyst, url, words):
    # given a staff member whose browser asks for zh-CN
    # when a staff page is opened
    response = analyst.get(url, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")
    body = response.content.decode()
    # then it says so in its lang attribute and its labels are Chinese
    assert response.status_code == 200 and '<html lang="zh-hans">' in body
    assert [word for word in words if word not in body] == []
    assert "Knowledge gaps" not in body and "Sign out" not in body


def test_the_default_is_english(analyst):
    body = analyst.get("/staff/").content.decode()
    assert '<html lang="en">' in body and "Knowledge gaps" in body and "知识缺口" not in body


def test_the_language_switcher_keeps_the_choice(analyst):
    # given an English page with the switcher
    assert 'action="/i18n/setlang/"' in analyst.get("/staff/").content.decode()
    # when Chinese is chosen
    response = analyst.post("/i18n/setlang/", {"language": "zh-hans", "next": "/kb/"})
    # then the user is sent back, and later pages are Chinese without any Accept-Language
    assert response.status_code == 302 and response["Location"] == "/kb/"
    assert "新建知识库" in analyst.get("/kb/").content.decode()
    # and back to English
    analyst.post("/i18n/setlang/", {"language": "en", "next": "/kb/"})
    assert "New knowledge base" in analyst.get("/kb/").content.decode()


def test_form_errors_and_flash_messages_of_kefus_own_code_are_translated(analyst, settings, tmp_path):
    settings.KEFU_DATA_DIR, settings.MEDIA_ROOT = tmp_path / "data", tmp_path / "data" / "uploads"
    settings.KEFU_KB_RESUME_ON_START = settings.KEFU_WARMUP = False
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-CN"}
    # given a knowledge base form whose overlap is not below its chunk size
    bad = analyst.post(reverse("kb:list"), {"name": "Manual 手册", "languages": "zh", "chunk_size": 64, "chunk_overlap": 64,
                                            "top_k": 5}, **zh)
    # then the form's own error is Chinese
    assert bad.status_code == 400 and "分块重叠必须小于分块大小。" in bad.content.decode()
    # given a base / when an FAQ entry is added / then the flash after the redirect is Chinese
    created = analyst.post(reverse("kb:list"), {"name": "Manual 手册", "languages": "zh", "chunk_size": 64,
                                                "chunk_overlap": 8, "top_k": 5}, **zh)
    faq_url = created["Location"] + "faq/"
    added = analyst.post(faq_url, {"question": "几点开门？", "answer": "早上八点。"}, follow=True, **zh)
    assert "FAQ 条目已添加。" in added.content.decode()


def test_dates_follow_the_language(analyst, db):
    from datetime import UTC, datetime

    from tests.analytics import seed

    # given a conversation started on 5 March 2026 at 14:30
    kb = seed.knowledge_base("shop")
    conv = seed.conversation(kb, at=datetime(2026, 3, 5, 14, 30, tzinfo=UTC))
    seed.exchange(conv, at=datetime(2026, 3, 5, 14, 30, tzinfo=UTC))
    url = f"/staff/conversations/{conv.public_id}/"
    # then English shows it ISO-like, Chinese the Chinese way
    assert "started 2026-03-05 14:30" in analyst.get(url).content.decode()
    assert "开始于 2026年3月5日 14:30" in analyst.get(url, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
