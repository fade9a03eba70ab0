"""The one public module of ``kb`` for other apps: search, query embedding, and index and backend status.

``hybrid(kb, query, k, *, query_vector=None) -> list[Hit]`` is what the chat pipeline calls.
Where the rows live (in-process FAISS + BM25, or Milvus) is the active index version's backend
(:mod:`kb.search_backends`); callers see the same hits either way. A backend that does not answer
raises :class:`SearchBackendUnavailable`, which the chat API answers with its JSON 503.
"""

from __future__ import annotations

from dataclasses import dataclass

from kb.embedding import embed_query
from kb.retrieval.search import Hit, SearchResult, hybrid, search
from kb.search_backends import BackendStatus, SearchBackendUnavailable


@dataclass(frozen=True)
class IndexStatus:
    """What serves a base's searches: its active version, the backend holding it and the model of its vectors."""

    knowledge_base_id: int
    version: int | None
    backend: str
    embedding_model: str
    chunk_count: int


def index_status(kb) -> IndexStatus:
    """The base's active index version (``version`` None: nothing indexed yet)."""
    from kb.models import IndexVersion

    active = IndexVersion.objects.filter(pk=kb.active_index_id).first() if kb.active_index_id else None
    if active is None:
        return IndexStatus(kb.pk, None, "", kb.embedding_model, 0)
    return IndexStatus(kb.pk, active.number, active.backend, active.embedding_model, active.chunk_count)


def backend_status() -> BackendStatus:
    """Whether the configured search backend (KEFU_SEARCH_BACKEND) answers."""
    from kb.search_backends import configured_backend

    return configured_backend().status()


__all__ = ["BackendStatus", "Hit", "IndexStatus", "SearchBackendUnavailable", "SearchResult", "backend_status",
           "embed_query", "hybrid", "index_status", "search"]
