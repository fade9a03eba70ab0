"""Fusion of ranked lists: weighted reciprocal-rank fusion, or a convex combination of min-max-normalised scores.

RRF: ``score(item) = Σ_r weight_r / (k + rank_r(item))`` with ranks from 1. Min-max:
``score(item) = Σ_r weight_r · (s_r(item) - min_r) / (max_r - min_r)`` over each retriever's
candidate list (0 where a retriever did not find the item), so how far apart the scores are
counts, not only their order. Equal weights let the weaker retriever drag the list down (see
docs/retrieval-baselines.md), so each knowledge base carries its own method, dense weight
and ``k``, tuned on its FAQ pairs (:func:`kb.evaluation.fusion_weight_tune`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranked:
    """One retriever's view of one item: its 1-based rank and raw score."""

    rank: int
    score: float


@dataclass(frozen=True)
class Fused:
    key: Hashable
    score: float
    found_by: Mapping[str, Ranked]


def weighted_rrf(rankings: Mapping[str, Sequence[tuple[Hashable, float]]], *, weights: Mapping[str, float],
                 k: int, limit: int) -> list[Fused]:
    """Fuse ``{retriever: [(key, score), ...] best first}`` into the ``limit`` best items."""
    scores: dict[Hashable, float] = {}
    found: dict[Hashable, dict[str, Ranked]] = {}
    for name, ranking in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, (key, raw) in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            found.setdefault(key, {})[name] = Ranked(rank=rank, score=float(raw))
    best = sorted(scores, key=lambda key: (-scores[key], best_rank(found[key])))[:limit]
    return [Fused(key=key, score=scores[key], found_by=found[key]) for key in best]


def weighted_minmax(rankings: Mapping[str, Sequence[tuple[Hashable, float]]], *, weights: Mapping[str, float],
                    limit: int) -> list[Fused]:
    """Fuse ``{retriever: [(key, score), ...] best first}`` by weighted min-max-normalised scores."""
    scores: dict[Hashable, float] = {}
    found: dict[Hashable, dict[str, Ranked]] = {}
    for name, ranking in rankings.items():
        if not ranking:
            continue
        weight = weights.get(name, 1.0)
        raw = [float(score) for _, score in ranking]
        low, span = min(raw), max(raw) - min(raw)
        for rank, ((key, _), value) in enumerate(zip(ranking, raw, strict=True), start=1):
            normalised = (value - low) / span if span > 0 else 1.0
            scores[key] = scores.get(key, 0.0) + weight * normalised
            found.setdefault(key, {})[name] = Ranked(rank=rank, score=value)
    best = sorted(scores, key=lambda key: (-scores[key], best_rank(found[key])))[:limit]
    return [Fused(key=key, score=scores[key], found_by=found[key]) for key in best]


def best_rank(found: Mapping[str, Ranked]) -> int:
    return min(r.rank for r in found.values())
