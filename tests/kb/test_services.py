"""Services: creating bases, uploads (dedup by hash, size limit, enqueue on commit), FAQ entries."""

from __future__ import annotations

import pytest

from kb.models import Document, FaqEntry
from kb.services import (
    UploadRejected,
    document_delete,
    document_upload,
    faq_entry_create,
    faq_phrasing_add,
    knowledge_base_create,
)


def test_knowledge_base_create_slugifies_and_refuses_duplicates(db):
    # given / when
    kb = knowledge_base_create(name="Help Centre")
    # then
    assert kb.slug == "help-centre"
    with pytest.raises(ValueError, match="already exists"):
        knowledge_base_create(name="Help centre")


def test_knowledge_base_create_rejects_overlap_not_below_size(db):
    with pytest.raises(ValueError, match="overlap"):
        knowledge_base_create(name="x", chunk_size=50, chunk_overlap=50)


def test_document_upload_enqueues_ingestion_on_commit(kb, monkeypatch, django_capture_on_commit_callbacks):
    # given
    enqueued = []
    monkeypatch.setattr("kb.services.ingest_enqueue", enqueued.append)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        result = document_upload(knowledge_base=kb, filename="a.txt", data=b"Hello there.")
    # then
    assert result.created and enqueued == [result.document.pk]
    assert result.document.status == Document.Status.QUEUED
    assert result.document.file.read() == b"Hello there."


def test_document_upload_same_content_twice_is_one_document(kb, monkeypatch):
    monkeypatch.setattr("kb.services.ingest_enqueue", lambda _id: None)
    first = document_upload(knowledge_base=kb, filename="a.txt", data=b"Same text.")
    second = document_upload(knowledge_base=kb, filename="b.txt", data=b"Same text.")
    assert second.created is False and second.document.pk == first.document.pk
    assert Document.objects.filter(knowledge_base=kb).count() == 1


def test_document_upload_over_the_limit_is_rejected_and_nothing_stored(kb, settings):
    settings.KEFU_MAX_UPLOAD_BYTES = 10
    with pytest.raises(UploadRejected, match="limit"):
        document_upload(knowledge_base=kb, filename="big.txt", data=b"x" * 11)
    assert not Document.objects.exists()


def test_faq_entry_create_drops_duplicate_phrasings(kb):
    entry = faq_entry_create(knowledge_base=kb, question="How do I pay?", answer="By card.",
                             alternatives=["how do i pay?", "Payment methods", "Payment  methods", ""], rebuild=False)
    assert entry.alternatives == ["Payment methods"]
    assert entry.phrasings == ["How do I pay?", "Payment methods"]


def test_a_confirmed_wording_joins_an_entrys_phrasings_once_and_rebuilds_the_index(
        kb, monkeypatch, django_capture_on_commit_callbacks):
    # given an embedded FAQ entry, and index rebuilds recorded instead of run
    rebuilt = []
    monkeypatch.setattr("kb.services.index_rebuild_enqueue", rebuilt.append)
    entry = faq_entry_create(knowledge_base=kb, question="Where do you deliver?", answer="All of Europe.",
                             rebuild=False)
    FaqEntry.objects.filter(pk=entry.pk).update(embeddings=b"\x00" * 8)
    entry.refresh_from_db()
    # when a customer's wording is added, then the same one again, then the question itself
    with django_capture_on_commit_callbacks(execute=True):
        added = [faq_phrasing_add(entry=entry, phrasing=text)
                 for text in ("Can you ship to  Oslo?", "can you ship to oslo?", "where do you deliver?")]
    # then it is one new phrasing, the entry is re-embedded by the next build, and that build is queued once
    entry.refresh_from_db()
    assert added == [True, False, False]
    assert entry.phrasings == ["Where do you deliver?", "Can you ship to Oslo?"] and entry.embeddings == b""
    assert rebuilt == [kb.pk]


def test_document_delete_removes_document_its_faq_rows_and_file(kb, monkeypatch):
    monkeypatch.setattr("kb.services.ingest_enqueue", lambda _id: None)
    monkeypatch.setattr("kb.services.index_rebuild_enqueue", lambda _id: None)
    document = document_upload(knowledge_base=kb, filename="a.txt", data=b"Text.").document
    faq_entry_create(knowledge_base=kb, question="q?", answer="a.", source_document=document, rebuild=False)
    path = document.file.path
    document_delete(document=document)
    assert not Document.objects.exists() and not FaqEntry.objects.exists()
    import os
    assert not os.path.exists(path)


def test_chinese_base_with_the_english_embedder_leans_on_bm25(db, settings):
    settings.KEFU_KB_DENSE_WEIGHT, settings.KEFU_KB_DENSE_WEIGHT_CJK = 0.7, 0.2
    assert knowledge_base_create(name="en", languages="en").fusion_dense_weight == 0.7
    assert knowledge_base_create(name="zh", languages="en,zh").fusion_dense_weight == 0.2
    settings.KEFU_EMBEDDING_MODEL = "/models/multilingual"
    assert knowledge_base_create(name="zh2", languages="zh").fusion_dense_weight == 0.7
