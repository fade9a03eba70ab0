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
