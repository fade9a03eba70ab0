"""Hybrid search: BM25 ∥ FAISS over the active index version → weighted RRF → hits with sources.

Rows of the index are chunks and FAQ phrasings; each retriever's rows collapse to items
(a chunk, or an FAQ entry at its best-matching phrasing) before fusion. Among near-tied fused hits,
one whose question asks for the customer's kind of answer leads (:mod:`kb.retrieval.question_type`), after an answer
found twice — as a FAQ entry and as the chunk of the same text — has gained on the others
(:mod:`kb.retrieval.corroboration`); then the best few are re-read word piece by word piece against the question
(:mod:`kb.retrieval.late_interaction`). A hit on an FAQ
entry carries its answer and the cosine similarity between the query and its closest
phrasing, which the chat app compares with the base's direct-answer threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from kb.embedding import default_model_name, embed_query, knowledge_base_model
from kb.indexing import ROW_FAQ, active_index
from kb.models import Chunk, FaqEntry
from kb.retrieval.analyzer import analyze
from kb.retrieval.corroboration import DEPTH_FACTOR, corroborated
from kb.retrieval.fusion import Ranked, weighted_minmax, weighted_rrf
from kb.retrieval.late_interaction import reread
from kb.retrieval.question_type import prefer_matching_type
from kb.search_backends import observed

BM25 = "bm25"
DENSE = "dense"


@dataclass(frozen=True)
class Hit:
    chunk_id: int | None
    document_id: int | None
    text: str
    score: float  # the fused score, plus its copy's share (kb.retrieval.corroboration); or the retriever's own score
    #   in single-retriever lists
    document_title: str
    page: int | None
    heading_path: str
    found_by: Mapping[str, Ranked] = field(default_factory=dict)  # retriever → rank and raw score
    external_id: str = ""
    faq_entry_id: int | None = None
    faq_question: str = ""
    faq_answer: str = ""
    similarity: float | None = None  # query–question cosine, FAQ hits only

    @property
    def is_faq(self) -> bool:
        return self.faq_entry_id is not None

    @property
    def source(self) -> str:
        parts = [self.document_title or ("FAQ" if self.is_faq else "")]
        if self.page:
            parts.append(f"p. {self.page}")
        if self.heading_path:
            parts.append(self.heading_path)
        return " · ".join(part for part in parts if part)


@dataclass(frozen=True)
class SearchResult:
    """The three lists the "try a query" page and the evaluation compare."""

    bm25: list[Hit]
    dense: list[Hit]
    hybrid: list[Hit]


@dataclass(frozen=True)
class Candidates:
    bm25: list[tuple[tuple[str, int], float]]
    dense: list[tuple[tuple[str, int], float]]
    query_vector: np.ndarray


def hybrid(kb, query: str, k: int | None = None, *, query_vector: np.ndarray | None = None, ask: str = ""
           ) -> list[Hit]:
    """The contract: the top-k fused hits of ``query`` in knowledge base ``kb`` (empty if unindexed).

    ``query_vector``: the query's normalised embedding when the caller already has it (the chat
    pipeline embeds each question once for its cache, intent and retrieval); saves one encoder pass.
    ``ask``: a follow-up's own words when ``query`` is its rewrite with the conversation's topic — the head is
    re-read against both (:func:`kb.retrieval.late_interaction.reread`).
    Only the fused hits are read from the database.
    """
    k = k or kb.top_k
    index = active_index(kb.pk)
    if index is None or not query.strip():
        return []
    found = candidates(index, query, settings.KEFU_KB_CANDIDATES, query_vector)
    fused = fuse(found, dense_weight=kb.fusion_dense_weight, rrf_k=kb.fusion_rrf_k, limit=k * DEPTH_FACTOR,
                 method=kb.fusion_method)
    hydrated = hydrate({f.key for f in fused}, found.query_vector, vectors_model=getattr(index, "embedding_model", ""))
    return fused_hits(query, fused, hydrated, k, model=version_model(index), tokens=version_tokens(index), ask=ask)


def search(kb, query: str, k: int | None = None, *, include_faq: bool = True,
           query_vector: np.ndarray | None = None) -> SearchResult:
    """BM25, dense and fused top-k hits for one query (``include_faq=False``: document chunks only)."""
    k = k or kb.top_k
    index = active_index(kb.pk)
    if index is None or not query.strip():
        return SearchResult([], [], [])
    found = candidates(index, query, settings.KEFU_KB_CANDIDATES, query_vector)
    if not include_faq:
        found = Candidates(bm25=[c for c in found.bm25 if c[0][0] == "chunk"],
                           dense=[c for c in found.dense if c[0][0] == "chunk"], query_vector=found.query_vector)
    fused = fuse(found, dense_weight=kb.fusion_dense_weight, rrf_k=kb.fusion_rrf_k, limit=k * DEPTH_FACTOR,
                 method=kb.fusion_method)
    lists = {
        BM25: [(key, score, {BM25: Ranked(rank, score)}) for rank, (key, score) in enumerate(found.bm25[:k], 1)],
        DENSE: [(key, score, {DENSE: Ranked(rank, score)}) for rank, (key, score) in enumerate(found.dense[:k], 1)],
        "hybrid": [(f.key, f.score, f.found_by) for f in fused],
    }
    hydrated = hydrate({key for items in lists.values() for key, _, _ in items}, found.query_vector,
                       vectors_model=getattr(index, "embedding_model", ""))
    as_hits = {name: [make_hit(hydrated[key], score, by) for key, score, by in items if key in hydrated]
               for name, items in lists.items() if name != "hybrid"}
    return SearchResult(bm25=as_hits[BM25], dense=as_hits[DENSE],
                        hybrid=fused_hits(query, fused, hydrated, k, model=version_model(index), tokens=version_tokens(index)))


def candidates(index, query: str, depth: int, query_vector: np.ndarray | None = None) -> Candidates:
    """Each retriever's best items (chunks / FAQ entries), best first, ``depth`` rows deep.

    ``query_vector`` lets batch callers (tuning, evaluation) embed many queries at once; it must come
    from the index version's own model (``index.embedding_model``), which embeds the query otherwise.
    """
    model = getattr(index, "embedding_model", "") or None  # blank: a version from before models were recorded
    vector = embed_query(query, model=model) if query_vector is None else query_vector
    remote = getattr(index, "retrieve", None)  # a version in a search server (kb.search_backends.milvus)
    if remote is not None:
        bm25, dense = remote(analyze(query), vector, depth)
        return Candidates(bm25=bm25, dense=dense, query_vector=vector)
    with observed("local", "search"):
        bm25_rows, bm25_scores = index.bm25.top(analyze(query), depth)
        dense_rows, dense_scores = index.dense.top(vector, depth)
    return Candidates(
        bm25=collapse(index.rows, bm25_rows, bm25_scores),
        dense=collapse(index.rows, dense_rows, dense_scores),
        query_vector=vector,
    )


def collapse(rows, row_ids: np.ndarray, scores: np.ndarray) -> list[tuple[tuple[str, int], float]]:
    """Rows → items, keeping each item's best row (FAQ entries have one row per phrasing)."""
    seen: set[tuple[str, int]] = set()
    out = []
    kinds = rows.kinds[row_ids].tolist()  # vectorised lookups: this runs on every query
    refs = rows.refs[row_ids].tolist()
    for kind, ref, score in zip(kinds, refs, scores.tolist(), strict=True):
        key = ("faq" if kind == ROW_FAQ else "chunk", ref)  # a heading row stands for its chunk
        if key not in seen:
            seen.add(key)
            out.append((key, score))
    return out


def fuse(found: Candidates, *, dense_weight: float, rrf_k: int | None = None, limit: int, method: str = "rrf"):
    """Weighted RRF (``method="rrf"``) or min-max score combination (``"minmax"``; ``rrf_k`` unused)."""
    rankings = {BM25: found.bm25, DENSE: found.dense}
    weights = {BM25: 1.0 - dense_weight, DENSE: dense_weight}
    if method == "minmax":
        return weighted_minmax(rankings, weights=weights, limit=limit)
    return weighted_rrf(rankings, weights=weights, k=rrf_k or settings.KEFU_KB_RRF_K, limit=limit)


def hydrate(keys: set[tuple[str, int]], query_vector: np.ndarray, *, vectors_model: str | None = None
            ) -> dict[tuple[str, int], dict]:
    """Text and source of each item, two queries in all.

    ``vectors_model``: the model of the searched version's vectors (blank: the default). A FAQ entry holds
    its base's current model's vectors: when a model switch committed after the request picked its version,
    they are another model's, and the entry gets no similarity rather than one across two spaces.
    """
    out: dict[tuple[str, int], dict] = {}
    chunk_ids = [ref for kind, ref in keys if kind == "chunk"]
    faq_ids = [ref for kind, ref in keys if kind == "faq"]
    for chunk in Chunk.objects.filter(pk__in=chunk_ids).select_related("document").only(
            "id", "text", "page", "heading_path", "document__id", "document__title", "document__external_id"):
        out[("chunk", chunk.pk)] = {
            "chunk_id": chunk.pk, "document_id": chunk.document_id, "text": chunk.text,
            "document_title": chunk.document.title, "page": chunk.page, "heading_path": chunk.heading_path,
            "external_id": chunk.document.external_id,
        }
    for entry in FaqEntry.objects.filter(pk__in=faq_ids).select_related("source_document", "knowledge_base"):
        document = entry.source_document
        same_space = vectors_model is None or same_model(knowledge_base_model(entry.knowledge_base), vectors_model)
        out[("faq", entry.pk)] = {
            "chunk_id": None, "document_id": document.pk if document else None,
            "text": f"{entry.question}\n{entry.answer}", "document_title": document.title if document else "FAQ",
            "page": None, "heading_path": "", "external_id": entry.external_id, "faq_entry_id": entry.pk,
            "faq_question": entry.question, "faq_answer": entry.answer,
            "similarity": faq_similarity(entry.embeddings, query_vector) if same_space else None,
        }
    return out


def same_model(current: str, vectors_model: str) -> bool:
    return current == (vectors_model or default_model_name())


def faq_similarity(embeddings: bytes, query_vector: np.ndarray) -> float | None:
    """Cosine between the query and the entry's closest phrasing (vectors are normalised)."""
    matrix = np.frombuffer(bytes(embeddings), dtype=np.float32)
    width = query_vector.shape[0]
    if not matrix.size or matrix.size % width:
        return None
    return float((matrix.reshape(-1, width) @ query_vector).max())


def fused_hits(query: str, fused, hydrated: dict[tuple[str, int], dict], k: int, *, model: str | None = None,
               tokens=None, ask: str = "") -> list[Hit]:
    """The best ``k`` fused items as hits, in the order a customer's question reads them: fused order with an
    answer found twice gaining on the others, then a near-tied hit of the asked answer type first, then the head
    re-read word by word by ``model``, the searched version's embedder (every hybrid list goes through here;
    ``fused`` runs ``DEPTH_FACTOR`` × k deep, so both copies are seen)."""
    hits = corroborated([make_hit(hydrated[f.key], f.score, f.found_by) for f in fused if f.key in hydrated])
    return reread(query, prefer_matching_type(query, hits), model=model, store=tokens, ask=ask)[:k]


def version_tokens(index):
    """The version's stored word pieces (kb.retrieval.token_store); None where it has none (a Milvus version)."""
    return getattr(index, "tokens", None)


def version_model(index) -> str | None:
    """The embedder of an index version's vectors (None: a version from before models were recorded, the default)."""
    return getattr(index, "embedding_model", "") or None


def make_hit(fields: dict, score: float, found_by: Mapping[str, Ranked]) -> Hit:
    return Hit(score=float(score), found_by=dict(found_by), **fields)
