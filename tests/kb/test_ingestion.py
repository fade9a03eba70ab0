"""Ingestion end to end on the real DB: chunks + embeddings stored, progress, failures leave nothing."""

from __future__ import annotations

import numpy as np
import pytest

from kb.ingestion import document_ingest
from kb.models import Chunk, Document, FaqEntry
from kb.recovery import documents_resume
from kb.services import document_upload, knowledge_base_create
from tests.kb.files import pdf_bytes

pytestmark = pytest.mark.usefixtures("search_backend")  # each test runs on local and on Milvus

POLICY = (b"# Returns\n\nYou can return any item within thirty days of delivery. Keep the receipt.\n\n"
          b"## Refunds\n\nRefunds are paid to the original card within five working days.\n")


def test_markdown_document_becomes_ready_with_embedded_chunks(kb, ingest):
    document = ingest(kb, "policy.md", POLICY)
    assert (document.status, document.progress, document.stage, document.file_type) == ("ready", 100, "ready", "markdown")
    chunks = list(Chunk.objects.filter(document=document))
    assert document.chunk_count == len(chunks) == 2
    assert chunks[1].heading_path == "Returns > Refunds"
    vector = np.frombuffer(chunks[0].embedding, dtype=np.float32)
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-4
    kb.refresh_from_db()
    assert kb.active_index.chunk_count == 2


def test_pdf_chunks_keep_their_page(kb, ingest):
    document = ingest(kb, "manual.pdf", pdf_bytes(["Install the pump first.", "Then open the valve."]))
    assert document.page_count == 2
    assert list(document.chunks.values_list("page", flat=True)) == [1, 2]


@pytest.mark.parametrize("filename, data, message", [
    ("secret.pdf", pdf_bytes(["Secret text."], password="pw"), "password-protected"),
    ("report.pdf", b"this is not a pdf at all", "not a PDF"),
    ("empty.txt", b"", "empty"),
])
def test_bad_files_fail_with_a_message_and_no_chunks(kb, ingest, filename, data, message):
    document = ingest(kb, filename, data)
    assert document.status == Document.Status.FAILED and message in document.error_message
    assert not Chunk.objects.filter(document=document).exists()


def test_failure_while_embedding_removes_chunks_and_keeps_old_index(kb, ingest, monkeypatch):
    # given a ready document and its active index
    ingest(kb, "policy.md", POLICY)
    kb.refresh_from_db()
    old_version = kb.active_index_id

    # when the index build of the next document fails
    def broken_build(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("kb.indexing.index_build", broken_build)
    document = ingest(kb, "other.txt", b"Shipping costs five euros within the EU.")
    # then the document failed, has no chunks, and the old version still serves
    assert document.status == "failed" and "disk full" in document.error_message
    assert not document.chunks.exists()
    kb.refresh_from_db()
    assert kb.active_index_id == old_version


def test_faq_sheet_document_creates_faq_entries(kb, ingest):
    sheet = "question,answer,alternatives\nHow do I pay?,By card or invoice.,Payment options|Can I pay by card?\n"
    document = ingest(kb, "faq.csv", sheet.encode())
    assert document.status == "ready"
    entry = FaqEntry.objects.get(source_document=document)
    assert entry.alternatives == ["Payment options", "Can I pay by card?"]
    assert len(entry.embeddings) == 3 * 384 * 4


def test_progress_is_saved_during_embedding(kb, embedder, monkeypatch):
    # given a document long enough for several embedding batches
    seen = []
    import kb.ingestion as ingestion

    original = ingestion.progress_save

    def spy(document_ids, status, stage, progress, **fields):
        seen.append((status, progress))
        original(document_ids, status, stage, progress, **fields)

    monkeypatch.setattr(ingestion, "progress_save", spy)
    monkeypatch.setattr("django.conf.settings.KEFU_KB_EMBED_BATCH", 2)
    text = " ".join(f"Fact number {i} about the product warranty and its terms." for i in range(60)).encode()
    document = document_upload(knowledge_base=kb, filename="facts.txt", data=text, enqueue=False).document
    # when
    assert document_ingest(document_id=document.pk).status == "ready"
    # then progress rose monotonically through the stages
    statuses = [s for s, _ in seen]
    assert statuses[0] == "parsing" and "embedding" in statuses and statuses[-1] == "indexing"
    progresses = [p for _, p in seen]
    assert progresses == sorted(progresses) and len({p for s, p in seen if s == "embedding"}) > 2


def test_documents_left_unfinished_are_re_enqueued(kb, monkeypatch):
    enqueued = []
    monkeypatch.setattr("kb.services.ingest_enqueue", enqueued.append)
    queued = document_upload(knowledge_base=kb, filename="a.txt", data=b"A.", enqueue=False).document
    half = document_upload(knowledge_base=kb, filename="b.txt", data=b"B.", enqueue=False).document
    Document.objects.filter(pk=half.pk).update(status="embedding")
    done = document_upload(knowledge_base=kb, filename="c.txt", data=b"C.", enqueue=False).document
    Document.objects.filter(pk=done.pk).update(status="ready")
    assert documents_resume() == 2 and sorted(enqueued) == sorted([queued.pk, half.pk])


def test_task_is_named_for_the_ingest_queue():
    from kb.tasks import ingest_document, rebuild_index
    from kefu.background import queue_of

    assert ingest_document.name == "kb.ingest_document" and queue_of(ingest_document) == "ingest"
    assert queue_of(rebuild_index) == "ingest"


def test_first_request_of_an_embedded_process_resumes_unfinished_documents(kb, settings, monkeypatch, client):
    import kb.apps as apps

    resumed = []
    monkeypatch.setattr("kb.recovery.documents_resume", lambda: resumed.append(1) or 0)
    monkeypatch.setattr(apps, "_resumed", __import__("threading").Event())
    settings.KEFU_KB_RESUME_ON_START = True
    settings.KEFU_MODE = "embedded"
    from django.core.signals import request_started

    request_started.connect(apps.resume_on_first_request, dispatch_uid="kb-resume-on-start")
    client.get("/healthz")
    client.get("/healthz")
    assert resumed == [1]


def test_queued_documents_of_a_base_are_ingested_together_with_one_build(kb, embedder, monkeypatch):
    from kb import embedding
    from kb.models import IndexVersion

    # given three uploads queued together, one of them a broken file
    first = document_upload(knowledge_base=kb, filename="a.txt", data=b"Cats are allowed.", enqueue=False).document
    broken = document_upload(knowledge_base=kb, filename="c.pdf", data=b"not a pdf", enqueue=False).document
    second = document_upload(knowledge_base=kb, filename="b.txt", data=b"Dogs are allowed.", enqueue=False).document
    calls = []
    real = embedding.embed_texts
    monkeypatch.setattr(embedding, "embed_texts", lambda texts, **kw: calls.append(len(texts)) or real(texts, **kw))
    # when the first document's task runs
    assert document_ingest(document_id=first.pk).status == "ready"
    # then it took the other queued ones along: one embedding call for both good documents, one build
    assert calls == [2]
    assert IndexVersion.objects.filter(knowledge_base=kb).count() == 1
    assert Document.objects.get(pk=second.pk).status == "ready"
    failed = Document.objects.get(pk=broken.pk)
    assert failed.status == "failed" and "not a PDF" in failed.error_message and not failed.chunks.exists()
    # and the tasks of the documents it took return without doing anything
    assert document_ingest(document_id=second.pk).status == "ready" and calls == [2]
    assert hybrid_titles(kb, "are dogs allowed")[0] == "b"


def hybrid_titles(kb, query):
    from kb.search import hybrid

    return [hit.document_title for hit in hybrid(kb, query, 3)]


def test_batch_size_one_ingests_one_document_per_task(kb, embedder, settings):
    # given two queued documents and batches of one
    settings.KEFU_KB_INGEST_BATCH = 1
    first = document_upload(knowledge_base=kb, filename="a.txt", data=b"Cats are allowed.", enqueue=False).document
    second = document_upload(knowledge_base=kb, filename="b.txt", data=b"Dogs are allowed.", enqueue=False).document
    # when the first task runs, the second is left queued and the build waits for it
    assert document_ingest(document_id=first.pk).status == "indexing"
    assert Document.objects.get(pk=second.pk).status == "queued"
    # then the last one builds for both
    assert document_ingest(document_id=second.pk).status == "ready"
    assert Document.objects.get(pk=first.pk).status == "ready"


def test_a_document_failing_to_store_leaves_the_others_of_its_batch_ready(kb, embedder, monkeypatch):
    import kb.services as services

    first = document_upload(knowledge_base=kb, filename="a.txt", data=b"Cats are allowed.", enqueue=False).document
    second = document_upload(knowledge_base=kb, filename="b.txt", data=b"Dogs are allowed.", enqueue=False).document
    real = services.chunks_replace

    def flaky(*, document, drafts, vectors):
        if document.pk == first.pk:
            raise OSError("database went away")
        return real(document=document, drafts=drafts, vectors=vectors)

    monkeypatch.setattr(services, "chunks_replace", flaky)
    assert document_ingest(document_id=first.pk).status == "failed"
    assert Document.objects.get(pk=second.pk).status == "ready"
    assert not Chunk.objects.filter(document_id=first.pk).exists()
    assert hybrid_titles(kb, "cats") == ["b"]


def test_a_document_another_worker_is_ingesting_is_left_alone_until_its_heartbeat_stops(kb, embedder):
    from datetime import timedelta

    from django.utils import timezone

    document = document_upload(knowledge_base=kb, filename="a.txt", data=b"Cats are allowed.", enqueue=False).document
    # given a document another worker is embedding right now
    Document.objects.filter(pk=document.pk).update(status="embedding", updated_at=timezone.now())
    assert document_ingest(document_id=document.pk).status == "embedding"
    assert not Chunk.objects.filter(document=document).exists()
    # when its progress has not moved for longer than the claim timeout (its worker died)
    Document.objects.filter(pk=document.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    # then the next task for it takes it over
    assert document_ingest(document_id=document.pk).status == "ready"


def test_only_stale_documents_are_reclaimed_when_asked(kb, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    enqueued = []
    monkeypatch.setattr("kb.services.ingest_enqueue", enqueued.append)
    stuck = document_upload(knowledge_base=kb, filename="a.txt", data=b"A.", enqueue=False).document
    moving = document_upload(knowledge_base=kb, filename="b.txt", data=b"B.", enqueue=False).document
    Document.objects.filter(pk=stuck.pk).update(status="embedding", updated_at=timezone.now() - timedelta(hours=2))
    Document.objects.filter(pk=moving.pk).update(status="embedding", updated_at=timezone.now())
    assert documents_resume(stale_after=timedelta(minutes=30)) == 1 and enqueued == [stuck.pk]
    # the reclaimed one is queued again, so its task may claim it; the moving one is untouched
    assert Document.objects.get(pk=stuck.pk).status == "queued"
    assert Document.objects.get(pk=moving.pk).status == "embedding"


def test_a_queued_tuning_run_is_enqueued_again_and_a_running_one_marked_failed(kb, monkeypatch):
    from kb.models import TuningRun

    # given a stopped process that left one tuning run queued (never started) and another base's running
    enqueued = []
    monkeypatch.setattr("kb.tuning.tuning_enqueue", enqueued.append)
    queued = TuningRun.objects.create(knowledge_base=kb, method="full")
    other = knowledge_base_create(name="Other")
    running = TuningRun.objects.create(knowledge_base=other, method="full", status=TuningRun.Status.RUNNING)
    # when the next process takes up what was left
    documents_resume()
    # then the queued run's job is enqueued again (it claims the run once) and the running one failed, with why
    assert enqueued == [queued.pk]
    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.status == TuningRun.Status.QUEUED
    assert running.status == TuningRun.Status.FAILED and "interrupted" in running.error_message
