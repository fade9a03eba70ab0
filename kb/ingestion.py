"""Ingestion of one document: parse → chunk → embed → store chunks → build index version.

``document_ingest`` is the plain function the ``kb.ingest_document`` task wraps; tests call
it directly. Progress (stage and %) is saved as it goes. Any failure ends the document as
``failed`` with a message a person understands and removes its chunks, so nothing of a
failed document is ever indexed. Running it again on an unfinished document starts over.

Budget: embedding dominates (≈60 chunks/s on 2 cores with MiniLM fp32); memory is the
file plus its chunks' vectors (1.5 kB each).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kb.models import Chunk, Document, FaqEntry

log = logging.getLogger(__name__)

EMBED_START, EMBED_END = 20, 85  # % of the bar the embedding stage covers


def document_ingest(*, document_id: int) -> Document:
    """Ingest one stored document; returns it ready or failed (never raises for a bad file)."""
    from kb.parsing import ParseError

    document = Document.objects.select_related("knowledge_base").get(pk=document_id)
    if document.status == Document.Status.READY:
        return document
    try:
        ingest_steps(document)
    except ParseError as exc:
        document_fail(document, str(exc))
        finish_pending_build(document.knowledge_base_id)
    except Exception as exc:
        log.exception("ingesting document %s failed", document_id)
        document_fail(document, f"Processing failed unexpectedly ({type(exc).__name__}: {exc}).")
    document.refresh_from_db()
    return document


def finish_pending_build(knowledge_base_id: int) -> None:
    """A failed document may be the last of a batch: build for the ones waiting on it."""
    from kb.indexing import index_build_unless_busy

    if Document.objects.filter(knowledge_base_id=knowledge_base_id, status=Document.Status.INDEXING).exists():
        try:
            index_build_unless_busy(knowledge_base_id=knowledge_base_id)
        except Exception:
            log.exception("index build for knowledge base %s failed", knowledge_base_id)


def ingest_steps(document: Document) -> None:
    from kb.chunking import chunk_sections
    from kb.embedding import embed_texts
    from kb.indexing import index_build_unless_busy
    from kb.parsing import ParseError, parse_document
    from kb.services import chunks_replace

    progress_save(document, Document.Status.PARSING, "reading the file", 2)
    data = read_file(document)
    parsed = parse_document(data, document.filename)
    Document.objects.filter(pk=document.pk).update(
        file_type=parsed.file_type, page_count=parsed.page_count,
        title=document.title if document.title else (parsed.title or document.filename)[:300],
    )
    if parsed.faq_rows:
        faq_rows_store(document, parsed.faq_rows)
        progress_save(document, Document.Status.INDEXING, f"indexing {len(parsed.faq_rows)} FAQ entries", 60)
    else:
        kb = document.knowledge_base
        progress_save(document, Document.Status.PARSING, "splitting into chunks", 10)
        drafts = chunk_sections(parsed.sections, size=kb.chunk_size, overlap=kb.chunk_overlap)
        if not drafts:
            raise ParseError("The file contains no text that could be extracted.")
        progress_save(document, Document.Status.EMBEDDING, f"embedding {len(drafts)} chunks", EMBED_START)
        vectors = embed_texts(
            [d.text for d in drafts], batch_size=settings.KEFU_KB_EMBED_BATCH,
            on_batch=lambda done, total: progress_save(
                document, Document.Status.EMBEDDING, f"embedding chunks ({done}/{total})",
                EMBED_START + (EMBED_END - EMBED_START) * done // total),
        )
        count = chunks_replace(document=document, drafts=drafts, vectors=vectors)
        Document.objects.filter(pk=document.pk).update(chunk_count=count)
        progress_save(document, Document.Status.INDEXING, "building the search index", EMBED_END + 5)
    progress_save(document, Document.Status.INDEXING, "waiting for the index build", EMBED_END + 10)
    # The build marks every document it holds ready; it is skipped while others are still
    # ahead in the pipeline (the last of them builds once for all).
    index_build_unless_busy(knowledge_base_id=document.knowledge_base_id)


def read_file(document: Document) -> bytes:
    from kb.parsing import ParseError

    if not document.file:
        raise ParseError("The uploaded file is missing.")
    try:
        with document.file.open("rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise ParseError("The uploaded file is missing from storage; upload it again.") from exc


def faq_rows_store(document: Document, rows) -> None:
    """Replace the FAQ entries this sheet created before with its current rows."""
    from kb.services import faq_entries_embed, faq_entry_create

    with transaction.atomic():
        FaqEntry.objects.filter(source_document=document).delete()
        for row in rows:
            faq_entry_create(knowledge_base=document.knowledge_base, question=row.question, answer=row.answer,
                             alternatives=row.alternatives, source_document=document, rebuild=False)
    progress_save(document, Document.Status.EMBEDDING, f"embedding {len(rows)} FAQ entries", 30)
    faq_entries_embed(knowledge_base_id=document.knowledge_base_id, missing_only=True)


def progress_save(document: Document, status: str, stage: str, progress: int) -> None:
    # updated_at is set by hand (update() skips auto_now): it is the heartbeat stale-job reclaim reads.
    Document.objects.filter(pk=document.pk).update(
        status=status, stage=stage[:100], progress=min(progress, 100), updated_at=timezone.now()
    )


def document_fail(document: Document, message: str) -> None:
    """Mark failed and remove whatever the document had stored; the index no longer sees it."""
    with transaction.atomic():
        Chunk.objects.filter(document_id=document.pk).delete()
        FaqEntry.objects.filter(source_document_id=document.pk).delete()
        Document.objects.filter(pk=document.pk).update(
            status=Document.Status.FAILED, stage="failed", error_message=message[:2000], chunk_count=0,
        )
