"""Evaluation metrics by hand, and fusion tuning on the base's own FAQ pairs."""

from __future__ import annotations

import math

import pytest

from kb.evaluation import (
    TUNE_NOISE,
    EvalQuery,
    chosen_setting,
    faq_pairs,
    fusion_weight_tune,
    query_metrics,
    ranks_of_relevant,
)


def test_metrics_for_a_known_ranking():
    # given relevant "a" at rank 2 and "b" at rank 7 (each counted once), 3 relevant in all
    labels = [{"x"}, {"a"}, {"a"}, {"y"}, {"z"}, {"w"}, {"b"}]
    ranks = ranks_of_relevant(labels, ["a", "b", "c"])
    ndcg, r1, r5, r10, mrr = query_metrics(ranks, 3)
    # then
    assert ranks == [2, 7]
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg == pytest.approx((1 / math.log2(3) + 1 / math.log2(8)) / ideal)
    assert (r1, r5, r10, mrr) == (0, pytest.approx(1 / 3), pytest.approx(2 / 3), 0.5)


def test_nothing_found_scores_zero():
    assert query_metrics([], 1) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_fusion_tuning_uses_faq_pairs_and_saves_the_best(kb, ingest):
    # given documents and FAQ entries whose answers live in them
    from kb.services import faq_entry_create

    topics = ["cats", "dogs", "parking", "invoices", "refunds", "delivery", "warranty", "opening hours",
              "gift cards", "accessibility", "wifi", "lockers"]
    for topic in topics:
        document = ingest(kb, f"{topic}.txt", f"Our policy on {topic}: {topic} are handled at the front desk.".encode())
        faq_entry_create(knowledge_base=kb, question=f"What is the rule for {topic}?", answer="See desk.",
                         source_document=document, rebuild=False)
    from kb.indexing import index_build

    index_build(knowledge_base_id=kb.pk)
    assert len(faq_pairs(kb)) == len(topics)
    # when
    best, results = fusion_weight_tune(knowledge_base=kb, grid=(0.5, 0.9), k_grid=(5, 60))
    # then every setting was scored, and the saved one is a best one
    kb.refresh_from_db()
    assert set(results) == {("rrf", 0.5, 5), ("rrf", 0.5, 60), ("rrf", 0.9, 5), ("rrf", 0.9, 60),
                            ("minmax", 0.5, 0), ("minmax", 0.9, 0)}
    assert (kb.fusion_method, kb.fusion_dense_weight) == best[:2]
    assert best[0] == "minmax" or kb.fusion_rrf_k == best[2]
    assert results[best] >= max(results.values()) - TUNE_NOISE and results[best] > 0.5


def test_fusion_tuning_keeps_settings_with_too_few_pairs(kb):
    best, results = fusion_weight_tune(knowledge_base=kb, pairs=[EvalQuery("q", ("d",))])
    assert best == (kb.fusion_method, kb.fusion_dense_weight, kb.fusion_rrf_k) and results == {}


def test_fusion_settings_within_the_noise_band_count_as_tied():
    # given two min-max settings 0.0008 apart (the demo base's two best, whose order flips between CPUs)
    results = {("minmax", 0.9, 0): 0.7304, ("minmax", 0.85, 0): 0.7296, ("rrf", 0.85, 5): 0.7269}
    # then the one nearer the default weight wins, whichever is ahead by float noise
    assert chosen_setting(results) == ("minmax", 0.85, 0)
    assert chosen_setting({**results, ("minmax", 0.85, 0): 0.7310}) == ("minmax", 0.85, 0)
    # and RRF wins a tie; a setting clearly ahead wins outright
    assert chosen_setting({**results, ("rrf", 0.85, 5): 0.7300}) == ("rrf", 0.85, 5)
    assert chosen_setting({**results, ("minmax", 0.9, 0): 0.7400}) == ("minmax", 0.9, 0)
