"""Writes to the knowledge-base tables; every async follow-up is enqueued on commit.

Views, commands and the demo call these; nothing else writes kb rows (ingestion progress
is written by :mod:`kb.ingestion`, which these enqueue).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import PurePath

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import F
from django.utils.text import slugify
from django.utils.translation import gettext

from kb import embedding  # embedding.embed_texts looked up per call: tests swap it for a cache
from kb.embedding import ENGLISH_ONLY, check_model_name, knowledge_base_model
from kb.models import Chunk, Document, EvalCase, FaqEntry, GlossaryEdit, IndexVersion, KnowledgeBase
from kb.signals import retrieval_changed
from kefu import background

log = logging.getLogger(__name__)


class UploadRejected(Exception):
    """An upload refused before anything is stored; the message is shown to the uploader."""


@dataclass(frozen=True)
class UploadResult:
    document: Document
    created: bool  # False: the same content was already in this knowledge base


def knowledge_base_create(*, name: str, slug: str = "", languages: str = "en", chunk_size: int = 200,
                          chunk_overlap: int = 30, top_k: int = 5, direct_answer_threshold: float = 0.85,
                          embedding_model: str = "") -> KnowledgeBase:
    """A new, empty base; ``embedding_model`` names its embedder (default: KEFU_EMBEDDING_MODEL; ConfigError if unknown)."""
    # the process default is checked at start (kefu.preflight); a name given here is checked now
    embedding_model = check_model_name(embedding_model) if embedding_model else settings.KEFU_EMBEDDING_MODEL
    name = name.strip()
    if not name:
        raise ValueError("A knowledge base needs a name.")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError("Chunk overlap must be smaller than the chunk size.")
    slug = slugify(slug or name)[:100] or "kb"
    if KnowledgeBase.objects.filter(slug=slug).exists():
        raise ValueError(f"A knowledge base with the slug {slug!r} already exists.")
    return KnowledgeBase.objects.create(
        name=name, slug=slug, languages=languages, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
        top_k=top_k, direct_answer_threshold=direct_answer_threshold, embedding_model=embedding_model,
        fusion_dense_weight=default_dense_weight(languages, embedding_model), fusion_rrf_k=settings.KEFU_KB_RRF_K,
    )


def default_dense_weight(languages: str, embedding_model: str = "") -> float:
    """Fusion weight before any tuning: BM25-heavy for Chinese when the embedder only knows English.

    On debian-faq-zh-cn the bundled all-MiniLM-L6-v2 scores nDCG@10 0.21 against BM25's 0.55
    (BENCHMARKS.md), so a dense-heavy default would sink Chinese bases.
    """
    codes = {code.strip().lower() for code in languages.split(",")}
    if codes & {"zh", "zh-cn", "zh-tw", "ja", "ko"} and (embedding_model or settings.KEFU_EMBEDDING_MODEL) in ENGLISH_ONLY:
        return settings.KEFU_KB_DENSE_WEIGHT_CJK
    return settings.KEFU_KB_DENSE_WEIGHT


def content_hash(data: bytes | File) -> str:
    if not isinstance(data, File):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    data.seek(0)
    for chunk in data.chunks():
        digest.update(chunk)
    data.seek(0)
    return digest.hexdigest()


def document_upload(*, knowledge_base: KnowledgeBase, filename: str, data: bytes | File, title: str = "",
                    external_id: str = "", enqueue: bool = True) -> UploadResult:
    """Store an uploaded file as a queued document and enqueue its ingestion (once per content).

    ``data``: the bytes, or a file (an upload Django spooled to disk), hashed and copied to storage chunk by
    chunk — a 50 MB upload is never held in memory whole."""
    size = data.size if isinstance(data, File) else len(data)
    if size > settings.KEFU_MAX_UPLOAD_BYTES:
        raise UploadRejected(
            f"{filename}: {size / 1e6:.1f} MB is over the {settings.KEFU_MAX_UPLOAD_BYTES / 1e6:.1f} MB limit."
        )
    digest = content_hash(data)
    existing = Document.objects.filter(knowledge_base=knowledge_base, content_hash=digest).first()
    if existing is not None:
        if existing.status == Document.Status.FAILED and enqueue:
            existing = document_reindex(document=existing)  # the same file again: try once more
        return UploadResult(existing, created=False)
    name = PurePath(filename).name or "upload"
    with transaction.atomic():
        document = Document(
            knowledge_base=knowledge_base, title=(title or PurePath(name).stem)[:300], external_id=external_id,
            filename=name[:300], content_hash=digest, size_bytes=size, stage="queued",
        )
        document.file.save(name, data if isinstance(data, File) else ContentFile(data), save=False)
        document.save()
        if enqueue:
            transaction.on_commit(lambda: ingest_enqueue(document.pk))
    return UploadResult(document, created=True)


def ingest_enqueue(document_id: int) -> None:
    # by name: the tasks module imports the ingestion and indexing code, which calls this module
    background.enqueue("kb.ingest_document", document_id)


def index_rebuild_enqueue(knowledge_base_id: int, *, gate: bool = True, embedding_model: str = "") -> None:
    background.enqueue("kb.rebuild_index", knowledge_base_id, gate, embedding_model)


def index_version_activate_anyway(*, version: IndexVersion) -> None:
    """An admin overrides the regression gate: the held build is made again, with its embedding model,
    and activated without the comparison (the held files are not reused: a build is cheap next to the
    risk of activating a version whose rows changed since it was measured)."""
    if version.status != IndexVersion.Status.HELD:
        raise ValueError("Only an index version held by the regression gate can be activated anyway.")
    kb_id, model = version.knowledge_base_id, version.embedding_model
    transaction.on_commit(lambda: index_rebuild_enqueue(kb_id, gate=False, embedding_model=model))


def eval_case_record(*, knowledge_base: KnowledgeBase, question: str, origin: str,
                     faq_entry: FaqEntry | None = None, document: Document | None = None) -> EvalCase | None:
    """Keep a confirmed question in the base's evaluation set (kb.regression_gate); the first
    confirmation of a question wins. None for a blank question."""
    question = " ".join(question.split())
    if not question:
        return None
    if (faq_entry is None) == (document is None):
        raise ValueError("An evaluation case names exactly one source: an FAQ entry or a document.")
    case, _ = EvalCase.objects.get_or_create(knowledge_base=knowledge_base, question=question[:2000], defaults={
        "origin": origin, "faq_entry": faq_entry, "document": document})
    return case


def document_reindex(*, document: Document) -> Document:
    """Parse, chunk and embed the document again (after a failure or a model change)."""
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.QUEUED, stage="queued", progress=0, error_message=""
    )
    transaction.on_commit(lambda: ingest_enqueue(document.pk))
    document.refresh_from_db()
    return document


def document_delete(*, document: Document) -> None:
    """Delete the document, its chunks and its file; the index is rebuilt without it."""
    kb_id = document.knowledge_base_id
    stored = document.file.name
    storage = document.file.storage
    with transaction.atomic():
        FaqEntry.objects.filter(source_document=document, knowledge_base_id=kb_id).delete()
        document.delete()
        transaction.on_commit(lambda: index_rebuild_enqueue(kb_id))
    if stored:
        storage.delete(stored)


def knowledge_base_reindex(*, knowledge_base: KnowledgeBase) -> None:
    transaction.on_commit(lambda: index_rebuild_enqueue(knowledge_base.pk))


def faq_entry_create(*, knowledge_base: KnowledgeBase, question: str, answer: str,
                     alternatives: list[str] | tuple[str, ...] = (), external_id: str = "",
                     source_document: Document | None = None, rebuild: bool = True) -> FaqEntry:
    question, answer = question.strip(), answer.strip()
    if not question or not answer:
        raise ValueError("An FAQ entry needs a question and an answer.")
    entry = FaqEntry.objects.create(
        knowledge_base=knowledge_base, question=question, answer=answer,
        alternatives=clean_alternatives(alternatives, question), external_id=external_id,
        source_document=source_document,
    )
    if rebuild:
        transaction.on_commit(lambda: index_rebuild_enqueue(knowledge_base.pk))
    return entry


def faq_entry_update(*, entry: FaqEntry, question: str, answer: str,
                     alternatives: list[str] | tuple[str, ...] = ()) -> FaqEntry:
    question, answer = question.strip(), answer.strip()
    if not question or not answer:
        raise ValueError("An FAQ entry needs a question and an answer.")
    entry.question, entry.answer = question, answer
    entry.alternatives = clean_alternatives(alternatives, question)
    entry.embeddings = b""  # phrasings changed: re-embedded by the next index build
    entry.save()
    transaction.on_commit(lambda: index_rebuild_enqueue(entry.knowledge_base_id))
    return entry


def faq_phrasing_add(*, entry: FaqEntry, phrasing: str) -> bool:
    """A customer's wording that staff confirmed this entry answers joins its alternatives, so the next customer who
    asks it finds the entry (re-indexed on commit). False when the entry already has that phrasing."""
    merged = clean_alternatives([*entry.alternatives, phrasing], entry.question)
    if len(merged) == len(entry.alternatives):
        return False
    entry.alternatives = merged
    entry.embeddings = b""  # phrasings changed: re-embedded by the next index build
    entry.save()
    transaction.on_commit(lambda: index_rebuild_enqueue(entry.knowledge_base_id))
    return True


def faq_entry_delete(*, entry: FaqEntry) -> None:
    kb_id = entry.knowledge_base_id
    entry.delete()
    transaction.on_commit(lambda: index_rebuild_enqueue(kb_id))


class GlossaryEditRejected(ValueError):
    """A glossary correction that cannot be made (a term the base's glossary does not hold, …)."""


def glossary_term_explain(*, knowledge_base: KnowledgeBase, term: str, explanation: str) -> GlossaryEdit:
    """Staff explain ``term`` their way — a term of their own, or a mined explanation replaced; questions are searched
    with it from the next one on (no new index version)."""
    term, explanation = " ".join(term.split()), " ".join(explanation.split())
    if not term or not explanation:
        raise GlossaryEditRejected(gettext("A glossary term needs an explanation."))
    return glossary_edit_save(knowledge_base, term, GlossaryEdit.Kind.EXPLAIN, explanation)


def glossary_term_ignore(*, knowledge_base: KnowledgeBase, term: str) -> GlossaryEdit:
    """Staff stop the base explaining a term its texts explain (a wrong pair the mining found)."""
    from kb.search import glossary_of_version  # lazy: kb.search loads the retrieval stack

    term = " ".join(term.split())
    mined = glossary_of_version(knowledge_base.pk, knowledge_base.active_index_id).by_lower
    if term.lower() not in mined:
        raise GlossaryEditRejected(gettext("“%(term)s” is not in this base's glossary.") % {"term": term})
    return glossary_edit_save(knowledge_base, mined[term.lower()].term, GlossaryEdit.Kind.IGNORE, "")


@transaction.atomic
def glossary_edit_undo(*, knowledge_base: KnowledgeBase, term: str) -> None:
    """Drop the staff's correction of ``term``: the base explains it as its texts do again (or not at all)."""
    deleted, _ = GlossaryEdit.objects.filter(knowledge_base=knowledge_base, term_key=term.strip().lower()).delete()
    if not deleted:
        raise GlossaryEditRejected(gettext("“%(term)s” has no correction to undo.") % {"term": term.strip()})
    glossary_changed(knowledge_base)


@transaction.atomic
def glossary_edit_save(knowledge_base: KnowledgeBase, term: str, kind: str, explanation: str) -> GlossaryEdit:
    """The correction stored and the base's glossary revision bumped, together or not at all."""
    edit, _ = GlossaryEdit.objects.update_or_create(
        knowledge_base=knowledge_base, term_key=term.lower(),
        defaults={"term": term, "kind": kind, "explanation": explanation})
    glossary_changed(knowledge_base)
    return edit


def glossary_changed(knowledge_base: KnowledgeBase) -> None:
    """Every process searches with the corrected glossary from its next question (the revision is part of the
    key it keeps a glossary under); the base's answerability is fitted again and its cached answers are dropped
    once the change commits (kb.signals.retrieval_changed)."""
    KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(glossary_revision=F("glossary_revision") + 1)
    version = knowledge_base.active_index_id
    if version is not None:
        transaction.on_commit(lambda: retrieval_changed.send(
            sender=KnowledgeBase, knowledge_base_id=knowledge_base.pk, index_version_id=version))


def clean_alternatives(alternatives, question: str) -> list[str]:
    seen = {question.strip().lower()}
    out = []
    for phrasing in alternatives:
        phrasing = " ".join(str(phrasing).split())
        if phrasing and phrasing.lower() not in seen:
            seen.add(phrasing.lower())
            out.append(phrasing)
    return out


def faq_entries_embed(*, knowledge_base_id: int, missing_only: bool = True) -> int:
    """Embed FAQ phrasings (question first, then alternatives) with the base's model; returns how many entries.

    Nothing is written when the base switched models meanwhile (kb.indexing.vectors_switch): the
    entries stay unembedded and the next build embeds them with the new model.
    """
    model = knowledge_base_model(KnowledgeBase.objects.get(pk=knowledge_base_id))
    entries = FaqEntry.objects.filter(knowledge_base_id=knowledge_base_id)
    if missing_only:
        entries = entries.filter(embeddings=b"")
    entries = list(entries)
    if not entries:
        return 0
    phrasings = [entry.phrasings for entry in entries]
    vectors = embedding.embed_texts([p for group in phrasings for p in group], model=model,
                                    batch_size=settings.KEFU_KB_EMBED_BATCH)
    start = 0
    for entry, group in zip(entries, phrasings, strict=True):
        entry.embeddings = vectors[start:start + len(group)].tobytes()
        start += len(group)
    with transaction.atomic():
        if knowledge_base_model_locked(knowledge_base_id) != model:
            return 0
        FaqEntry.objects.bulk_update(entries, ["embeddings"], batch_size=500)
    return len(entries)


def knowledge_base_model_locked(knowledge_base_id: int) -> str:
    """The base's embedding model, its row locked until the transaction ends (a switch waits for the writer)."""
    return knowledge_base_model(KnowledgeBase.objects.select_for_update().get(pk=knowledge_base_id))


def chunks_replace(*, document: Document, drafts, vectors) -> int:
    """Swap the document's chunks for new ones in one transaction; returns the count."""
    chunks = [
        Chunk(document=document, ordinal=i, text=d.text, heading_path=" > ".join(d.heading_path),
              page=d.page, token_count=d.token_count, embedding=vectors[i].tobytes())
        for i, d in enumerate(drafts)
    ]
    with transaction.atomic():
        Chunk.objects.filter(document=document).delete()
        Chunk.objects.bulk_create(chunks, batch_size=1000)
    return len(chunks)
