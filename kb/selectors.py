"""Reads of the knowledge-base tables for views, commands and other apps."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, QuerySet

from kb.models import Chunk, Document, FaqEntry, IndexVersion, KnowledgeBase


def knowledge_base_list() -> QuerySet[KnowledgeBase]:
    return KnowledgeBase.objects.annotate(
        document_count=Count("documents", distinct=True), faq_count=Count("faq_entries", distinct=True)
    ).select_related("active_index")


def knowledge_base_get(*, ref: str | int) -> KnowledgeBase:
    """A knowledge base by id, slug or exact name (commands accept any of them)."""
    text = str(ref)
    if text.isdigit():
        found = KnowledgeBase.objects.filter(pk=int(text)).first()
        if found:
            return found
    found = KnowledgeBase.objects.filter(slug=text).first() or KnowledgeBase.objects.filter(name=text).first()
    if found is None:
        raise KnowledgeBase.DoesNotExist(f"No knowledge base {ref!r}.")
    return found


@dataclass(frozen=True)
class GateState:
    """What the KB page shows of the regression gate: the evaluation set and the latest gated build."""

    stored_cases: int
    active: IndexVersion | None
    held: IndexVersion | None  # the newest build the gate held back, if newer than the active one
    last_report: dict  # the gate's report of the newest gated version (held or activated)


def regression_gate_state(*, knowledge_base: KnowledgeBase) -> GateState:
    versions = knowledge_base.index_versions.filter(
        status__in=(IndexVersion.Status.READY, IndexVersion.Status.HELD)).order_by("-number")
    newest = versions.first()
    active = knowledge_base.active_index
    held = newest if newest is not None and newest.status == IndexVersion.Status.HELD and (
        active is None or newest.number > active.number) else None
    gated = next((v for v in versions[:5] if v.gate), None)
    return GateState(knowledge_base.eval_cases.count(), active, held, gated.gate if gated else {})


def document_list(*, knowledge_base: KnowledgeBase) -> QuerySet[Document]:
    return knowledge_base.documents.all()


def document_progress(*, knowledge_base: KnowledgeBase, ids: list[int] | None = None) -> list[dict]:
    """What the upload page polls: status, stage, % and error of each document."""
    documents = knowledge_base.documents.all()
    if ids:
        documents = documents.filter(pk__in=ids)
    return list(documents.values("id", "title", "status", "stage", "progress", "error_message",
                                 "chunk_count", "page_count", "file_type"))


def faq_entry_list(*, knowledge_base: KnowledgeBase) -> QuerySet[FaqEntry]:
    return knowledge_base.faq_entries.select_related("source_document")


def chunk_count(*, knowledge_base: KnowledgeBase) -> int:
    return Chunk.objects.filter(document__knowledge_base=knowledge_base).count()


TUNING_FIELDS = ("id", "status", "stage", "progress", "method", "base_model", "tuned_model", "pair_count", "folds",
                 "gain", "adopted", "reason", "seconds", "error_message", "created_at")


def tuning_runs(*, knowledge_base: KnowledgeBase, limit: int = 5) -> list[dict]:
    """The base's latest tuning runs, newest first: progress while running, then the measured result."""
    return list(knowledge_base.tuning_runs.values(*TUNING_FIELDS)[:limit])


def index_versions(*, knowledge_base: KnowledgeBase, limit: int = 6) -> QuerySet[IndexVersion]:
    """The base's latest index versions, newest first, each with the embedding model it was built with."""
    return knowledge_base.index_versions.order_by("-number")[:limit]
