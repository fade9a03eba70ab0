"""Okapi BM25 on a scipy sparse matrix, scoring exactly as ``rank_bm25.BM25Okapi``.

rank-bm25 scores a query by looping over all documents per term (hundreds of ms at 100k
chunks). Here every document-term weight ``idf(t) · tf·(k1+1) / (tf + k1·(1-b+b·|d|/avgdl))``
is computed once at build time into a CSC matrix (documents × terms), so a query is one
column slice and a sparse mat-vec. idf is rank-bm25's: ``ln(N-n+0.5) - ln(n+0.5)``, and
terms with negative idf get ``epsilon · mean idf``. Query terms repeat as they do there.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class Bm25Params:
    k1: float = 1.5  # term-frequency saturation (rank-bm25's default)
    b: float = 0.75  # length normalisation (rank-bm25's default)
    epsilon: float = 0.25  # floor for negative idf, as a fraction of the mean idf


class Bm25Index:
    """Document-term weights (CSC, N × V) and the vocabulary."""

    def __init__(self, weights: sparse.csc_matrix, vocabulary: dict[str, int]):
        self.weights = weights
        self.vocabulary = vocabulary

    @property
    def size(self) -> int:
        return self.weights.shape[0]

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every document, shape (N,) — equal to BM25Okapi.get_scores."""
        counts = Counter(self.vocabulary[t] for t in query_terms if t in self.vocabulary)
        if not counts:
            return np.zeros(self.size, dtype=np.float64)
        ids = np.fromiter(counts.keys(), dtype=np.int64)
        weights = np.fromiter(counts.values(), dtype=np.float64)
        return np.asarray(self.weights[:, ids] @ weights).ravel()

    def top(self, query_terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and scores of the k best documents with a positive score, best first."""
        scores = self.scores(query_terms)
        positive = np.flatnonzero(scores > 0)
        if positive.size > k:
            positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
        order = positive[np.argsort(-scores[positive], kind="stable")]
        return order, scores[order]

    def save(self, directory: Path) -> None:
        sparse.save_npz(directory / "bm25.npz", self.weights, compressed=False)
        (directory / "bm25-vocabulary.json").write_text(json.dumps(self.vocabulary, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> Bm25Index:
        weights = sparse.load_npz(directory / "bm25.npz").tocsc()
        vocabulary = json.loads((directory / "bm25-vocabulary.json").read_text())
        return cls(weights, vocabulary)


def build_bm25(corpus: list[list[str]], params: Bm25Params = Bm25Params()) -> Bm25Index:
    """Index tokenised documents. An empty corpus gives an index that scores nothing."""
    vocabulary: dict[str, int] = {}
    rows, cols, tfs = [], [], []
    doc_len = np.zeros(len(corpus), dtype=np.float64)
    for row, terms in enumerate(corpus):
        doc_len[row] = len(terms)
        for term, tf in Counter(terms).items():
            rows.append(row)
            cols.append(vocabulary.setdefault(term, len(vocabulary)))
            tfs.append(tf)
    shape = (len(corpus), len(vocabulary))
    if not tfs:
        return Bm25Index(sparse.csc_matrix(shape, dtype=np.float64), vocabulary)
    rows_a, cols_a = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    tf = np.asarray(tfs, dtype=np.float64)
    idf = okapi_idf(np.bincount(cols_a, minlength=len(vocabulary)), len(corpus), params.epsilon)
    avgdl = doc_len.mean()
    norm = params.k1 * (1 - params.b + params.b * doc_len[rows_a] / avgdl)
    values = idf[cols_a] * (tf * (params.k1 + 1) / (tf + norm))
    weights = sparse.csc_matrix((values, (rows_a, cols_a)), shape=shape)
    return Bm25Index(weights, vocabulary)


def okapi_idf(document_frequency: np.ndarray, corpus_size: int, epsilon: float) -> np.ndarray:
    """rank-bm25's idf: negative values replaced by epsilon × the mean of all raw idf values."""
    idf = np.log(corpus_size - document_frequency + 0.5) - np.log(document_frequency + 0.5)
    floor = epsilon * idf.mean()
    return np.where(idf < 0, floor, idf)
