"""The local backend: each process loads FAISS + BM25 files of the active version (kb.indexing, kb.retrieval)."""

from __future__ import annotations

import numpy as np

from kb.indexing import (
    ROW_FAQ,
    ROW_HEADING,
    load_version,
    prune_old_versions,
    version_dir,
    write_version_files,
)
from kb.retrieval.search import collapse
from kb.search_backends import LOCAL, BackendStatus


class LocalBackend:
    name = LOCAL

    def write(self, kb_id: int, version, *, model: str, fresh=None) -> dict:
        return write_version_files(kb_id, version_dir(kb_id, version.number), model=model, fresh=fresh)

    def load(self, kb_id: int, version_id: int, number: int, embedding_model: str):
        return load_version(kb_id, version_id, number)

    def prune(self, kb_id: int, keep: set[int]) -> None:
        prune_old_versions(kb_id)

    def status(self) -> BackendStatus:
        return BackendStatus(LOCAL, True, "in-process FAISS + BM25 indexes")


# ---------------------------------------------------------------- what the answerability features read
# Row ids on this backend are row numbers of the version's files (kb.indexing.IndexRows).


def heading_rows(index) -> dict[int, list[int]]:
    """Each section heading's row (kb.retrieval.headings), keyed by the chunk it stands for."""
    rows = np.flatnonzero(index.rows.kinds == ROW_HEADING)
    return {ref: [row] for row, ref in zip(rows.tolist(), index.rows.refs[rows].tolist(), strict=True)}


def faq_rows(index) -> dict[int, list[int]]:
    """Each FAQ entry's rows, in the order of its phrasings (kb.indexing.collect_rows writes them so)."""
    rows_of: dict[int, list[int]] = {}
    faq = np.flatnonzero(index.rows.kinds == ROW_FAQ)
    for row, ref in zip(faq.tolist(), index.rows.refs[faq].tolist(), strict=True):
        rows_of.setdefault(ref, []).append(row)
    return rows_of


def term_profile(index, terms: list[str], exclude: np.ndarray) -> tuple[float, float]:
    """(ceiling, coverage) of a query's terms from the version's BM25 matrix, ``exclude`` rows ignored."""
    if not terms:
        return 0.0, 0.0
    weights, vocabulary = index.bm25.weights, index.bm25.vocabulary  # CSC, rows × terms
    ceiling, covered, best_of = 0.0, 0, {}
    for term in terms:
        if term not in best_of:
            best_of[term] = column_best(weights, vocabulary.get(term), exclude)
        best = best_of[term]
        ceiling += best
        covered += best > 0
    return ceiling, covered / len(terms)


def column_best(weights, column: int | None, exclude: np.ndarray) -> float:
    if column is None:
        return 0.0
    start, end = weights.indptr[column], weights.indptr[column + 1]
    values = weights.data[start:end]
    if exclude.size:
        values = values[~np.isin(weights.indices[start:end], exclude)]
    return float(values.max()) if values.size else 0.0


def retrieve(index, terms: list[str], vector: np.ndarray, depth: int, exclude: np.ndarray):
    """(BM25 items, dense items) as :func:`kb.retrieval.search.candidates` gives them, ``exclude`` rows left out
    (each retriever asks for as many more rows as are excluded, so ``depth`` rows remain)."""
    spare = depth + int(exclude.size)
    bm25_rows, bm25_scores = index.bm25.top(terms, spare)
    dense_rows, dense_scores = index.dense.top(vector, spare)
    bm25_keep = ~np.isin(bm25_rows, exclude)
    dense_keep = ~np.isin(dense_rows, exclude)
    return (collapse(index.rows, bm25_rows[bm25_keep][:depth], bm25_scores[bm25_keep][:depth]),
            collapse(index.rows, dense_rows[dense_keep][:depth], dense_scores[dense_keep][:depth]))
