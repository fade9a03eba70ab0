"""Weighted RRF: weights and k change the order; each fused item says who found it."""

from __future__ import annotations

import pytest

from kb.retrieval.fusion import Ranked, weighted_minmax, weighted_rrf

RANKINGS = {"bm25": [("a", 9.0), ("b", 5.0)], "dense": [("b", 0.9), ("c", 0.8), ("a", 0.1)]}


def test_equal_weights_reward_agreement():
    fused = weighted_rrf(RANKINGS, weights={"bm25": 0.5, "dense": 0.5}, k=60, limit=3)
    assert [f.key for f in fused] == ["b", "a", "c"]
    assert fused[0].found_by == {"bm25": Ranked(2, 5.0), "dense": Ranked(1, 0.9)}
    assert fused[0].score == pytest.approx(0.5 / 62 + 0.5 / 61)


def test_dense_heavy_weights_follow_dense_order():
    fused = weighted_rrf(RANKINGS, weights={"bm25": 0.05, "dense": 0.95}, k=1, limit=2)
    assert [f.key for f in fused] == ["b", "c"]


def test_limit_and_missing_retriever():
    fused = weighted_rrf({"bm25": [("x", 1.0)], "dense": []}, weights={"bm25": 1.0}, k=60, limit=5)
    assert [(f.key, list(f.found_by)) for f in fused] == [("x", ["bm25"])]


def test_minmax_combination_counts_score_gaps_not_only_ranks():
    # given bm25 sure of "a" (far ahead) and dense mildly preferring "b"
    rankings = {"bm25": [("a", 12.0), ("b", 2.0), ("c", 1.0)], "dense": [("b", 0.62), ("a", 0.60), ("c", 0.10)]}
    # when fused with equal weights, then "a" wins on score (RRF with equal weights ties a and b on ranks)
    fused = weighted_minmax(rankings, weights={"bm25": 0.5, "dense": 0.5}, limit=3)
    assert [f.key for f in fused] == ["a", "b", "c"]
    assert fused[0].score == pytest.approx(0.5 * 1.0 + 0.5 * (0.60 - 0.10) / (0.62 - 0.10))
    assert fused[2].score == pytest.approx(0.0) and fused[0].found_by["dense"] == Ranked(2, 0.60)


def test_minmax_single_candidate_and_missing_retriever():
    fused = weighted_minmax({"bm25": [("x", 3.0)], "dense": []}, weights={"bm25": 0.3, "dense": 0.7}, limit=5)
    assert [(f.key, f.score, list(f.found_by)) for f in fused] == [("x", 0.3, ["bm25"])]
