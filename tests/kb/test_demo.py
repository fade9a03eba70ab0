"""The demo base: FAQ entries + answer documents, indexed, idempotent."""

from __future__ import annotations

from kb.demo import DEMO_SLUG, ensure_demo_knowledge_base, faq_rows
from kb.models import KnowledgeBase
from kb.search import hybrid


def test_demo_base_is_built_once_and_answers_from_its_faq(db, embedder, monkeypatch):
    # given the first dozen real rows of the zaragoza FAQ
    rows = faq_rows()[:12]
    assert len(faq_rows()) > 400
    monkeypatch.setattr("kb.demo.faq_rows", lambda: rows)
    # when
    first = ensure_demo_knowledge_base()
    second = ensure_demo_knowledge_base()
    # then
    kb = KnowledgeBase.objects.get(slug=DEMO_SLUG)
    assert "ready: 12 documents" in first and "already present" in second
    assert kb.faq_entries.count() == 12 and kb.documents.filter(status="ready").count() == 12
    hits = hybrid(kb, rows[3]["q"], 3)
    assert hits[0].is_faq and hits[0].faq_answer == rows[3]["a"] and hits[0].similarity > 0.95


def test_the_chinese_demo_base_is_built_once_from_debians_chinese_faq(db, embedder, tmp_path):
    from kb.demo import DEMO_ZH_SLUG, ensure_demo_zh_knowledge_base
    from tests.chat.demo_page import zh_faq_subset

    # given two chapters of Debian's FAQ in Simplified Chinese
    folder = zh_faq_subset(tmp_path)
    # when the Chinese demo base is ensured twice
    first = ensure_demo_zh_knowledge_base(folder)
    second = ensure_demo_zh_knowledge_base(folder)
    # then it is built once, each chapter one ready document, indexed, as a Chinese base
    kb = KnowledgeBase.objects.get(slug=DEMO_ZH_SLUG)
    assert "ready: 2 documents" in first and "already present: 2 documents" in second
    assert kb.languages == "zh" and kb.active_index is not None and kb.documents.filter(status="ready").count() == 2
    assert KnowledgeBase.objects.filter(slug=DEMO_ZH_SLUG).count() == 1
    # and a Chinese question finds its chapter's section
    hits = hybrid(kb, "什么是 Debian GNU/Linux？", 3)
    assert hits and any("什么是 Debian GNU/Linux" in (hit.heading_path or "") for hit in hits)


def test_without_debians_chinese_faq_the_chinese_demo_is_skipped_in_one_line(db, tmp_path):
    from kb.demo import DEMO_ZH_SLUG, ensure_demo_zh_knowledge_base

    # given no Chinese FAQ / when / then one line says so and names the package; no base is made
    line = ensure_demo_zh_knowledge_base(tmp_path / "absent")
    assert "skipped" in line and "debian-faq-zh-cn" in line and "\n" not in line
    assert not KnowledgeBase.objects.filter(slug=DEMO_ZH_SLUG).exists()
