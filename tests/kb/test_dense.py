"""Dense index: exact below the threshold, HNSW above it with recall@10 checked against exact."""

from __future__ import annotations

import numpy as np

from kb.retrieval.dense import DenseIndex, build_dense


def unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_flat_below_threshold_is_exact_cosine(tmp_path):
    vectors = unit_vectors(200, 32, 1)
    index = build_dense(vectors, dimension=32, hnsw_threshold=1000)
    index.save(tmp_path)
    index = DenseIndex.load(tmp_path)
    rows, scores = index.top(vectors[17], 3)
    assert index.kind == "flat" and rows[0] == 17 and abs(scores[0] - 1.0) < 1e-5
    exact = np.argsort(-(vectors @ vectors[17]))[:3]
    assert rows.tolist() == exact.tolist()


def test_hnsw_above_threshold_recall_against_exact():
    # given clustered data (like embeddings: neighbours are meaningful)
    rng = np.random.default_rng(3)
    centres = unit_vectors(50, 64, 4)
    vectors = centres[rng.integers(0, 50, 6000)] + 0.3 * unit_vectors(6000, 64, 5)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(6000, 100, replace=False)] + 0.05 * unit_vectors(100, 64, 6)
    # when
    hnsw = build_dense(vectors, dimension=64, hnsw_threshold=5000)
    exact = build_dense(vectors, dimension=64, hnsw_threshold=10**9)
    # then recall@10 of HNSW against the exact neighbours is high
    assert hnsw.kind == "hnsw" and exact.kind == "flat"
    hits = sum(len(set(hnsw.top(q, 10)[0]) & set(exact.top(q, 10)[0])) for q in queries)
    assert hits / (10 * len(queries)) >= 0.95


def test_empty_index_returns_nothing():
    index = build_dense(np.zeros((0, 8), dtype=np.float32), dimension=8, hnsw_threshold=10)
    rows, scores = index.top(np.ones(8, dtype=np.float32), 5)
    assert rows.size == 0 and scores.size == 0
