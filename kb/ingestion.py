"""Ingestion: parse → chunk → embed → store chunks → build index version, documents in batches.

``document_ingest`` is the plain function the ``kb.ingest_document`` task wraps; tests call
it directly. It claims its document and up to ``KEFU_KB_INGEST_BATCH`` - 1 other queued
documents of the same knowledge base, parses and chunks each on its own, embeds all their
chunks in one length-sorted pass (one ``encode`` per batch of texts, not per document), stores
each document's chunks in its own transaction and ends with at most one index build.
The tasks of the documents a batch took find them claimed or finished and return at once.

Progress (stage and %) is saved per document as it goes and doubles as the heartbeat: a
document in an unfinished state whose heartbeat is older than ``KEFU_KB_CLAIM_STALE_S`` is
an orphan (its worker died) and may be claimed again; a fresh one belongs to another worker.
Any failure ends that document as ``failed`` with a message a person understands and removes
its chunks, so nothing of a failed document is ever indexed, and it never stops the others.

Budget: embedding dominates (MiniLM fp32 on CPU); memory is the batch's files plus their
chunks' vectors (1.5 kB each).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

# modules, not names: embed_texts, chunks_replace and ingest_enqueue are looked up per call (tests swap them)
from kb import embedding, services
from kb.chunking import chunk_sections, split_by_tokens
from kb.embedding import PASSAGE, knowledge_base_model, token_lengths
from kb.indexing import index_build_unless_busy
from kb.models import Chunk, Document, FaqEntry
from kb.parsing import ParseError, parse_document
from kb.services import faq_entries_embed, faq_entry_create, knowledge_base_model_locked

log = logging.getLogger(__name__)

EMBED_START, EMBED_END = 20, 85  # % of the bar the embedding stage covers
UNFINISHED = (Document.Status.PARSING, Document.Status.EMBEDDING, Document.Status.INDEXING)
HEARTBEAT_S = 10  # seconds between heartbeats of claimed documents waiting for their turn
BATCH_MAX_BYTES = 32 * 1024 * 1024  # files read into memory together at most (one big file still goes alone)


@dataclass
class Prepared:
    """A parsed and chunked document waiting for its vectors (``drafts`` empty for FAQ sheets)."""

    document: Document
    drafts: list = field(default_factory=list)
    embedded: int = 0  # chunks embedded so far (progress)


def document_ingest(*, document_id: int) -> Document:
    """Ingest one stored document — with other queued ones of its base; returns it as it ends.

    Never raises for a bad file: the document ends ``failed`` with a reason. Returns the
    document unchanged when it is ready, failed, or being ingested by another worker.
    """
    document = Document.objects.select_related("knowledge_base").get(pk=document_id)
    if not document_claim(document.pk):
        return document
    batch = [document, *documents_claim_queued(document.knowledge_base_id, exclude=document.pk,
                                               room=settings.KEFU_KB_INGEST_BATCH - 1,
                                               budget=BATCH_MAX_BYTES - document.size_bytes)]
    batch_ingest(batch)
    document.refresh_from_db()
    return document


def document_claim(document_id: int) -> bool:
    """Take a queued document, or an unfinished one whose heartbeat stopped; False if not ours."""
    now = timezone.now()
    orphaned = Q(status__in=UNFINISHED, updated_at__lt=now - timedelta(seconds=settings.KEFU_KB_CLAIM_STALE_S))
    claimable = Q(status=Document.Status.QUEUED) | orphaned
    return Document.objects.filter(claimable, pk=document_id).update(
        status=Document.Status.PARSING, stage="claimed", updated_at=now) == 1


def documents_claim_queued(knowledge_base_id: int, *, exclude: int, room: int, budget: int) -> list[Document]:
    """Claim up to ``room`` more queued documents of the base (oldest first, within ``budget`` bytes)."""
    if room <= 0:
        return []
    candidates = (Document.objects.filter(knowledge_base_id=knowledge_base_id, status=Document.Status.QUEUED)
                  .exclude(pk=exclude).order_by("id").values_list("id", "size_bytes")[:room])
    wanted = []
    for document_id, size in candidates:
        if size > budget:
            break
        wanted.append(document_id)
        budget -= size
    # One conditional UPDATE; the token tells which rows this task got (another may have taken some).
    token = f"claimed {uuid.uuid4().hex}"
    Document.objects.filter(pk__in=wanted, status=Document.Status.QUEUED).update(
        status=Document.Status.PARSING, stage=token, updated_at=timezone.now())
    return list(Document.objects.select_related("knowledge_base").filter(pk__in=wanted, stage=token).order_by("id"))


def batch_ingest(documents: list[Document]) -> None:
    """Parse and chunk each, embed all chunks together, store each, build the index once."""
    prepared, beat = [], time.monotonic()
    progress_save([d.pk for d in documents], Document.Status.PARSING, "reading the file", 2)  # one UPDATE
    for position, document in enumerate(documents):
        item = document_prepare(document)
        if item is not None:
            prepared.append(item)
        if time.monotonic() - beat > HEARTBEAT_S:  # the rest are claimed but not started: not orphans
            heartbeat([d.pk for d in documents[position + 1:]])
            beat = time.monotonic()
    chunked = [p for p in prepared if p.drafts]
    model = knowledge_base_model(documents[0].knowledge_base)
    vectors = batch_embed(chunked, model)
    with transaction.atomic():  # one commit for the batch; each document still in its own savepoint
        if knowledge_base_model_locked(documents[0].knowledge_base_id) != model:
            documents_requeue([p.document.pk for p in chunked])  # a tuned model was adopted meanwhile
            chunked_ids = {p.document.pk for p in chunked}
            prepared = [p for p in prepared if p.document.pk not in chunked_ids]
        counts = {p.document.pk: document_store(p, vectors.get(p.document.pk)) if p.drafts else 0
                  for p in prepared}
        stored = [p for p in prepared if counts[p.document.pk] is not None]
        stored_progress({pk: count for pk, count in counts.items() if count})
    batch_index(documents[0].knowledge_base_id, [p.document for p in stored])


def document_prepare(document: Document) -> Prepared | None:
    """Parse and chunk one document (FAQ sheets: store their entries); None when it failed."""
    try:
        data = read_file(document)
        parsed = parse_document(data, document.filename)
        found = {"file_type": parsed.file_type, "page_count": parsed.page_count,
                 "title": document.title if document.title else (parsed.title or document.filename)[:300]}
        if parsed.faq_rows:
            Document.objects.filter(pk=document.pk).update(**found)
            faq_rows_store(document, parsed.faq_rows)
            progress_save([document.pk], Document.Status.INDEXING, f"indexing {len(parsed.faq_rows)} FAQ entries",
                          60)
            return Prepared(document)
        kb = document.knowledge_base
        model = knowledge_base_model(kb)  # chunk sizes count the tokens of the base's own embedder
        drafts = chunk_sections(parsed.sections, size=kb.chunk_size, overlap=kb.chunk_overlap,
                                token_lengths=partial(token_lengths, model=model),
                                split_long=partial(split_by_tokens, model=model))
        if not drafts:
            raise ParseError("The file contains no text that could be extracted.")
        progress_save([document.pk], Document.Status.EMBEDDING, f"embedding {len(drafts)} chunks", EMBED_START,
                      **found)
        return Prepared(document, drafts)
    except ParseError as exc:
        document_fail(document, str(exc))
    except Exception as exc:
        log.exception("ingesting document %s failed", document.pk)
        document_fail(document, unexpected(exc))
    return None


def batch_embed(prepared: list[Prepared], model: str) -> dict:
    """Document id → its chunks' vectors by ``model``, all documents in one pass; per document if that pass fails."""
    if not prepared:
        return {}
    try:
        return embed_together(prepared, model)
    except Exception:
        log.exception("embedding a batch of %d documents failed; embedding them one by one", len(prepared))
    vectors = {}
    for item in prepared:
        try:
            vectors.update(embed_together([item], model))
        except Exception as exc:
            log.exception("embedding document %s failed", item.document.pk)
            document_fail(item.document, unexpected(exc))
    return vectors


def embed_together(prepared: list[Prepared], model: str) -> dict:
    """Embed every chunk of the documents, shortest first (little padding), saving each one's progress."""
    owners = [(i, d) for i, item in enumerate(prepared) for d in item.drafts]
    order = sorted(range(len(owners)), key=lambda j: owners[j][1].token_count)
    out = [None] * len(owners)
    step = settings.KEFU_KB_EMBED_BATCH
    for start in range(0, len(order), step):
        piece = order[start:start + step]
        texts = [owners[j][1].text for j in piece]
        for j, vector in zip(piece, embedding.embed_texts(texts, model=model, batch_size=step, role=PASSAGE),
                             strict=True):
            out[j] = vector
        embedding_progress(prepared, [owners[j][0] for j in piece])
    vectors, position = {}, 0
    for item in prepared:
        vectors[item.document.pk] = np.stack(out[position:position + len(item.drafts)])
        position += len(item.drafts)
    return vectors


def embedding_progress(prepared: list[Prepared], owners_done: list[int]) -> None:
    """Advance the bar of each document that got vectors; refresh the others' heartbeat."""
    advanced = Counter(owners_done)
    groups: dict[tuple[int, int], list[int]] = {}  # (done, total) → documents: one UPDATE per group
    for index, count in advanced.items():
        item = prepared[index]
        item.embedded += count
        groups.setdefault((item.embedded, len(item.drafts)), []).append(item.document.pk)
    for (done, total), ids in groups.items():
        progress_save(ids, Document.Status.EMBEDDING, f"embedding chunks ({done}/{total})",
                      EMBED_START + (EMBED_END - EMBED_START) * done // total)
    waiting = [item.document.pk for i, item in enumerate(prepared) if i not in advanced]
    if waiting:
        Document.objects.filter(pk__in=waiting, status=Document.Status.EMBEDDING).update(updated_at=timezone.now())


def document_store(item: Prepared, vectors) -> int | None:
    """Store one document's chunks (its own savepoint); their count, or None when it failed."""
    if vectors is None:
        return None  # embedding failed: already marked failed
    try:
        with transaction.atomic():
            return services.chunks_replace(document=item.document, drafts=item.drafts, vectors=vectors)
    except Exception as exc:
        log.exception("storing the chunks of document %s failed", item.document.pk)
        document_fail(item.document, unexpected(exc))
        return None


def stored_progress(chunk_counts: dict[int, int]) -> None:
    """Stored documents wait for the index build: one UPDATE per distinct chunk count."""
    by_count: dict[int, list[int]] = {}
    for document_id, count in chunk_counts.items():
        by_count.setdefault(count, []).append(document_id)
    for count, ids in by_count.items():
        progress_save(ids, Document.Status.INDEXING, "waiting for the index build", EMBED_END + 10, chunk_count=count)


def batch_index(knowledge_base_id: int, stored: list[Document]) -> None:
    """One index build for the batch — skipped while documents of the base are still ahead in the
    pipeline (the last of them builds for all). A failed build fails the batch's documents and
    leaves the old version serving."""
    if not stored and not Document.objects.filter(
            knowledge_base_id=knowledge_base_id, status=Document.Status.INDEXING).exists():
        return
    try:
        index_build_unless_busy(knowledge_base_id=knowledge_base_id)
    except Exception as exc:
        log.exception("index build for knowledge base %s failed", knowledge_base_id)
        for document in stored:
            document_fail(document, unexpected(exc))


def documents_requeue(document_ids: list[int]) -> None:
    """Send claimed documents round again (their vectors came from a model the base no longer uses)."""
    progress_save(document_ids, Document.Status.QUEUED, "queued (the embedding model changed)", 0)
    for document_id in document_ids:
        transaction.on_commit(lambda document_id=document_id: services.ingest_enqueue(document_id))


def heartbeat(document_ids: list[int]) -> None:
    if document_ids:
        Document.objects.filter(pk__in=document_ids, status=Document.Status.PARSING).update(updated_at=timezone.now())


def unexpected(exc: Exception) -> str:
    return f"Processing failed unexpectedly ({type(exc).__name__}: {exc})."


def read_file(document: Document) -> bytes:
    if not document.file:
        raise ParseError("The uploaded file is missing.")
    try:
        with document.file.open("rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise ParseError("The uploaded file is missing from storage; upload it again.") from exc


def faq_rows_store(document: Document, rows) -> None:
    """Replace the FAQ entries this sheet created before with its current rows."""
    with transaction.atomic():
        FaqEntry.objects.filter(source_document=document).delete()
        for row in rows:
            faq_entry_create(knowledge_base=document.knowledge_base, question=row.question, answer=row.answer,
                             alternatives=row.alternatives, source_document=document, rebuild=False)
    progress_save([document.pk], Document.Status.EMBEDDING, f"embedding {len(rows)} FAQ entries", 30)
    faq_entries_embed(knowledge_base_id=document.knowledge_base_id, missing_only=True)


def progress_save(document_ids: list[int], status: str, stage: str, progress: int, **fields) -> None:
    """Status, stage and % of the documents (plus other ``fields``), in one UPDATE.

    updated_at is set by hand (update() skips auto_now): it is the heartbeat claims and reclaim read.
    """
    Document.objects.filter(pk__in=document_ids).update(
        status=status, stage=stage[:100], progress=min(progress, 100), updated_at=timezone.now(), **fields
    )


def document_fail(document: Document, message: str) -> None:
    """Mark failed and remove whatever the document had stored; the index no longer sees it."""
    with transaction.atomic():
        Chunk.objects.filter(document_id=document.pk).delete()
        FaqEntry.objects.filter(source_document_id=document.pk).delete()
        Document.objects.filter(pk=document.pk).update(
            status=Document.Status.FAILED, stage="failed", error_message=message[:2000], chunk_count=0,
        )
