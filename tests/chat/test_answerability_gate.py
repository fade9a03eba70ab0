"""The regression gate compares answerability too: the active model's decisions on each version's features."""

from __future__ import annotations

import pytest

from kb import regression_gate
from kb.models import EvalCase, IndexVersion
from tests.kb.files import SHOP_TOPICS

TOPICS = SHOP_TOPICS[:11]


@pytest.fixture
def fitted_base(db, embedder):
    """A served base with 11 confirmed questions (FAQ entries answer them) and a fitted answerability model."""
    from chat.answerability_fit import answerability_fit
    from kb.indexing import index_build
    from kb.ingestion import document_ingest
    from kb.services import document_upload, eval_case_record, faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name="Shop", chunk_size=64, chunk_overlap=8)
    for topic, text, question in TOPICS:
        upload = document_upload(knowledge_base=kb, filename=f"{topic}.md", enqueue=False,
                                 data=f"# {topic.title()}\n\n{text}\n".encode())
        document = document_ingest(document_id=upload.document.pk)
        entry = faq_entry_create(knowledge_base=kb, question=f"What is your {topic} policy?", answer=text,
                                 source_document=document, rebuild=False)
        eval_case_record(knowledge_base=kb, question=question, origin=EvalCase.Origin.STAFF, faq_entry=entry)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    answerability_fit(knowledge_base_id=kb.pk)
    return kb


def test_an_ordinary_rebuild_reports_the_same_answerability_accuracy_for_both_versions(fitted_base):
    from kb.indexing import index_build

    # when the same rows are built again
    version = index_build(knowledge_base_id=fitted_base.pk)
    # then the report carries the answerability figure, equal on both sides, and the build serves
    report = IndexVersion.objects.get(pk=version.pk).gate
    assert version.status == IndexVersion.Status.READY and report["passed"]
    figures = {figure["name"]: figure for figure in report["figures"]}
    accuracy = figures["answerability accuracy"]
    assert 0.5 < accuracy["active"] <= 1.0 and accuracy["candidate"] == pytest.approx(accuracy["active"])
    assert "answerability accuracy" in report["reason"]


def test_a_build_whose_answerability_accuracy_drops_is_held(fitted_base, monkeypatch):
    from kb.indexing import index_build

    # given a check that finds the candidate's decisions worse (the comparison above is the real one)
    def worse(knowledge_base, *, candidate, active, cases):
        return regression_gate.GateFigure("answerability accuracy", 0.80, 0.90)

    monkeypatch.setattr(regression_gate, "GATE_CHECKS", [worse])
    version = index_build(knowledge_base_id=fitted_base.pk)
    assert version.status == IndexVersion.Status.HELD
    assert "answerability accuracy: 0.800 against 0.900 (-0.100, more than the tolerance)" in version.gate["reason"]


def test_a_failing_check_never_blocks_a_build(fitted_base, monkeypatch, caplog):
    from kb.indexing import index_build

    def broken(knowledge_base, *, candidate, active, cases):
        raise RuntimeError("model file unreadable")

    monkeypatch.setattr(regression_gate, "GATE_CHECKS", [broken])
    version = index_build(knowledge_base_id=fitted_base.pk)
    assert version.status == IndexVersion.Status.READY and IndexVersion.objects.get(pk=version.pk).gate["figures"] == []
    assert "regression gate check broken failed" in caplog.text
