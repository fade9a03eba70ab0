"""The one public module of ``kb`` for other apps: search, query embedding, and index and backend status.

``hybrid(kb, query, k, *, query_vector=None, ask="") -> list[Hit]`` is what the chat pipeline calls;
``term_profile``, ``faq_rows`` and ``hits_excluding`` are what its answerability model reads of a version.
Where the rows live (in-process FAISS + BM25, or Milvus) is the active index version's backend
(:mod:`kb.search_backends`); callers see the same hits either way. A backend that does not answer
raises :class:`SearchBackendUnavailable`, which the chat API answers with its JSON 503.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from kb.embedding import embed_query, embedding_dimension
from kb.indexing import INDEXED_STATUSES, active_index
from kb.models import Chunk, FaqEntry, GlossaryEdit, IndexVersion, KnowledgeBase
from kb.retrieval import glossary, spelling
from kb.retrieval.analyzer import analyze
from kb.retrieval.corroboration import DEPTH_FACTOR
from kb.retrieval.search import (
    Candidates,
    Hit,
    SearchResult,
    candidates,
    fuse,
    fused_hits,
    hybrid,
    hydrate,
    search,
    version_model,
    version_tokens,
)
from kb.search_backends import BackendStatus, SearchBackendUnavailable, configured_backend, local


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
    active = IndexVersion.objects.filter(pk=kb.active_index_id).first() if kb.active_index_id else None
    if active is None:
        return IndexStatus(kb.pk, None, "", kb.embedding_model, 0)
    return IndexStatus(kb.pk, active.number, active.backend, active.embedding_model, active.chunk_count)


def backend_status() -> BackendStatus:
    """Whether the configured search backend (KEFU_SEARCH_BACKEND) answers."""
    return configured_backend().status()


# ---------------------------------------------------------------- what the answerability model reads
# A version's rows are named by row ids: row numbers of the local files, primary keys in Milvus. Only
# :func:`faq_rows` hands them out; :func:`term_profile` and :func:`hits_excluding` take them back.


@dataclass(frozen=True)
class TermProfile:
    """How well a base's BM25 can match a query's terms at best."""

    ceiling: float  # sum over the terms (repeats counted) of the term's highest BM25 weight in any row
    coverage: float  # share of the terms that occur in some row


def is_remote(index) -> bool:
    """A version served by a search server (kb.search_backends.milvus), not the process's files."""
    return getattr(index, "retrieve", None) is not None


def term_profile(index, terms: list[str], *, exclude: Sequence[int] = ()) -> TermProfile:
    """The query terms' BM25 ceiling and coverage in an index version, ``exclude`` rows ignored.

    The ceiling is in the scale of the BM25 scores the version's searches return (each backend's own
    BM25), so a hit's score over it reads the same way on both.
    """
    excluded = np.asarray(exclude, dtype=np.int64)
    if is_remote(index):
        return TermProfile(*index.term_profile(terms, excluded.tolist()))
    return TermProfile(*local.term_profile(index, terms, excluded))


def term_profiles(index, queries: Sequence[tuple[list[str], Sequence[int]]]) -> list[TermProfile]:
    """:func:`term_profile` of many ``(terms, exclude)`` queries at once (Milvus: a few batched searches)."""
    if is_remote(index):
        return [TermProfile(*p) for p in index.term_profiles([(terms, list(exclude)) for terms, exclude in queries])]
    return [TermProfile(*local.term_profile(index, terms, np.asarray(exclude, dtype=np.int64)))
            for terms, exclude in queries]


def faq_rows(index) -> dict[int, list[int]]:
    """Each FAQ entry's row ids in the version, in the order of its phrasings (question, alternatives)."""
    return index.faq_rows() if is_remote(index) else local.faq_rows(index)


def heading_rows(index) -> dict[int, list[int]]:
    """Each section heading's row id in the version, keyed by the chunk it stands for (kb.retrieval.headings)."""
    return index.heading_rows() if is_remote(index) else local.heading_rows(index)


def vector_width(index) -> int:
    """The dimension of the version's vectors."""
    return index.dense.index.d if not is_remote(index) else embedding_dimension(index.embedding_model or None)


def hits_excluding(kb, index, queries: Sequence[tuple[str, np.ndarray, Sequence[int]]]) -> list[list[Hit]]:
    """:func:`hybrid` of each ``(query, query vector, excluded row ids)`` on a given version, its excluded
    rows left out of both retrievers (a held-out phrasing must not find itself); the base's fusion, hits
    hydrated from the database. Milvus answers all the queries in a few batched searches."""
    depth = settings.KEFU_KB_CANDIDATES
    if is_remote(index):
        found = index.retrieve_many([(analyze(q), v, list(ex)) for q, v, ex in queries], depth)
    else:
        found = [local.retrieve(index, analyze(q), v, depth, np.asarray(ex, dtype=np.int64)) for q, v, ex in queries]
    out = []
    for (query, vector, _), (bm25, dense) in zip(queries, found, strict=True):
        fused = fuse(Candidates(bm25=bm25, dense=dense, query_vector=vector), dense_weight=kb.fusion_dense_weight,
                     rrf_k=kb.fusion_rrf_k, limit=kb.top_k * DEPTH_FACTOR, method=kb.fusion_method)
        hydrated = hydrate({f.key for f in fused}, vector, vectors_model=getattr(index, "embedding_model", ""))
        out.append(fused_hits(query, fused, hydrated, kb.top_k, model=version_model(index),
                              tokens=version_tokens(index)))
    return out


__all__ = ["BackendStatus", "Hit", "IndexStatus", "SearchBackendUnavailable", "SearchResult", "TermProfile",
           "active_index", "analyze", "backend_status", "base_texts", "embed_query", "faq_rows", "heading_rows",
           "hits_excluding", "hybrid", "index_status", "search", "spelled", "term_profile", "term_profiles",
           "vector_width"]


def best_similarity(kb, query: str, query_vector: np.ndarray) -> float:
    """The best dense cosine of a query in the base's active index (0 when the base has none)."""
    index = active_index(kb.pk)
    if index is None or not query.strip():
        return 0.0
    found = candidates(index, query, 1, query_vector)
    return float(found.dense[0][1]) if found.dense else 0.0


def spelled(kb_id: int, index_version_id: int | None, text: str) -> spelling.Correction:
    """``text`` with its misspelled words corrected to the base's own words (:mod:`kb.retrieval.spelling`)."""
    if index_version_id is None or not spelling.LATIN_LETTER.search(text):
        return spelling.Correction(text)
    speller = spelling.speller_for((kb_id, index_version_id), lambda: base_texts(kb_id))
    return speller.correct(text)


def glossed(kb_id: int, index_version_id: int | None, text: str, *, revision: int | None = None) -> str:
    """``text`` with the base's bracketed terms explained as its texts explain them ("can servitut (easement) be
    removed?", :mod:`kb.retrieval.glossary`), as its staff corrected them (``revision``: the base's
    ``glossary_revision`` where the caller holds the base, else read)."""
    if index_version_id is None:
        return text
    return glossary_of_version(kb_id, index_version_id, revision=revision).explain(text)


GLOSSARY_SHOWN = 200  # terms the KB page lists (a large base may define thousands)


@dataclass(frozen=True)
class GlossaryTerm:
    term: str
    explanation: str
    by_staff: bool = False  # the staff's explanation (a term of theirs, or the mined one replaced)


@dataclass(frozen=True)
class GlossaryPage:
    """What the KB page lists: the terms searched with (alphabetically, at most ``GLOSSARY_SHOWN``), how many there
    are in all, and the mined terms staff chose not to explain."""

    terms: list[GlossaryTerm]
    total: int
    ignored: list[str]


def glossary_terms(kb_id: int, index_version_id: int | None) -> GlossaryPage:
    """The glossary as the active version searches with it, for the KB page."""
    edits = glossary_edits(kb_id)
    by_staff = {edit.term.lower() for edit in edits if edit.explanation}
    searched = (glossary_of_version(kb_id, index_version_id) if index_version_id is not None
                else glossary.corrected(glossary.Glossary(()), edits))  # before the first index: the staff's terms
    glosses = sorted(searched.glosses.values(), key=lambda g: g.term.lower())
    terms = [GlossaryTerm(g.term, g.explanation, g.term.lower() in by_staff) for g in glosses[:GLOSSARY_SHOWN]]
    return GlossaryPage(terms, len(glosses), [edit.term for edit in edits if not edit.explanation])


def glossary_of_version(kb_id: int, index_version_id: int | None, *, revision: int | None = None
                        ) -> glossary.Glossary:
    """The glossary a base's index version searches with: mined from its texts, corrected by its staff as of
    ``revision`` (None: the base's current one, read) — empty before its first index."""
    if index_version_id is None:
        return glossary.Glossary(())
    mined = glossary.glossary_for((kb_id, index_version_id), lambda: base_texts(kb_id))
    if revision is None:
        revision = KnowledgeBase.objects.filter(pk=kb_id).values_list("glossary_revision", flat=True).first()
    if not revision:
        return mined
    return glossary.corrected_for((kb_id, index_version_id, revision), mined, lambda: glossary_edits(kb_id))


def glossary_edits(kb_id: int) -> list[glossary.GlossEdit]:
    """The staff's corrections of a base's glossary, by term."""
    rows = GlossaryEdit.objects.filter(knowledge_base_id=kb_id).values_list("term", "kind", "explanation")
    return [glossary.GlossEdit(term, explanation if kind == GlossaryEdit.Kind.EXPLAIN else "")
            for term, kind, explanation in rows]



def as_searched(kb_id: int, index_version_id: int | None, text: str, *, revision: int | None = None) -> str:
    """A question as retrieval reads it: misspellings corrected to the base's words, then its terms glossed
    (``revision``: as :func:`glossed`)."""
    return glossed(kb_id, index_version_id, spelled(kb_id, index_version_id, text).text, revision=revision)


def base_texts(kb_id: int) -> Iterator[str]:
    """Every text a base answers from: its FAQ phrasings and answers, its indexed chunks and their headings."""
    entries = FaqEntry.objects.filter(knowledge_base_id=kb_id).values_list("question", "alternatives", "answer")
    for question, alternatives, answer in entries.iterator():
        yield question
        yield from alternatives or ()
        yield answer
    chunks = Chunk.objects.filter(document__knowledge_base_id=kb_id, document__status__in=INDEXED_STATUSES)
    for text, heading_path in chunks.values_list("text", "heading_path").iterator():
        yield text
        yield heading_path
