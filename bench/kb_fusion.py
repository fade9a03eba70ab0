"""Fusion experiments on the kb evaluation sets: weighted RRF against score-aware and query-adaptive fusion.

    .venv/bin/python bench/kb_fusion.py [--only zaragoza,debian-en,debian-zh]

The sets are built through the real ingestion path (bench/kb_datasets.py); each query's
candidates (top 100 chunks per retriever, FAQ items excluded) are taken once from the live
index, and every method fuses the same candidates. Every tuned method is scored 2-fold
(tuned on half the queries, scored on the other half), as bench/kb_eval.py does for RRF.

Methods:
- rrf: weighted RRF, (dense weight, k) tuned — what ``kb.search`` does.
- minmax: convex combination of min-max-normalised scores, α tuned.
- dbsf: distribution-based score fusion (each list's scores mapped by mean ± 3σ to [0, 1]), α tuned.
- rrf-adaptive: RRF whose dense weight moves by the retrievers' agreement (overlap of their top 10):
  w = w_lo + (w_hi - w_lo) · overlap, both tuned.
- bm25 jieba-search (Chinese set): BM25 rebuilt with jieba's search mode (``cut_for_search``) for
  indexing and the plain mode for queries, and rrf on top of it.
- multilingual check (Chinese set): dense alone, to show what the English-only embedder does.
Budget: the three sets' ingestion (minutes on 2 cores) plus < 1 min of fusion.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kb_datasets  # noqa: E402
from kb_eval import build  # noqa: E402

ALPHAS = tuple(round(a, 2) for a in np.arange(0.05, 1.0, 0.05))
RRF_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
RRF_KS = (5, 20, 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="zaragoza,debian-en,debian-zh")
    args = parser.parse_args()
    kb_datasets.django_setup()
    print("| set | method | nDCG@10 (2-fold) | settings chosen per fold |")
    print("|---|---|---|---|")
    for name in args.only.split(","):
        kb, queries, _, _ = build(name)
        found, labels = collect(kb, queries)
        report(name, "bm25 alone", single(found, labels, queries, 0), "")
        report(name, "dense alone", single(found, labels, queries, 1), "")
        for method, grid in methods().items():
            score, chosen = two_fold(method, grid, found, labels, queries)
            report(name, method.__name__.replace("_", "-"), score, chosen)
        if name == "debian-zh":
            search_mode = with_bm25(found, jieba_search_bm25(kb, queries))
            report(name, "bm25 jieba-search", single(search_mode, labels, queries, 0), "")
            score, chosen = two_fold(rrf, methods()[rrf], search_mode, labels, queries)
            report(name, "rrf on bm25 jieba-search", score, chosen)
        sys.stdout.flush()


def methods() -> dict:
    return {
        rrf: list(itertools.product(RRF_WEIGHTS, RRF_KS)),
        minmax: [(a,) for a in ALPHAS],
        dbsf: [(a,) for a in ALPHAS],
        rrf_adaptive: [(lo, hi, k) for lo in RRF_WEIGHTS for hi in RRF_WEIGHTS for k in (5, 20)],
    }


def collect(kb, queries):
    """Per query: ([(chunk id, score)] bm25, [(chunk id, score)] dense); chunk id → labels."""
    from django.conf import settings

    from kb.embedding import embed_texts
    from kb.evaluation import chunk_candidates, chunk_labels
    from kb.indexing import active_index
    from kb.retrieval.search import candidates

    index = active_index(kb.pk)
    vectors = embed_texts([q.query for q in queries], batch_size=settings.KEFU_KB_EMBED_BATCH)
    found = []
    for q, vector in zip(queries, vectors, strict=True):
        c = chunk_candidates(candidates(index, q.query, settings.KEFU_KB_CANDIDATES, query_vector=vector))
        found.append(([(key[1], s) for key, s in c.bm25], [(key[1], s) for key, s in c.dense]))
    keys = {("chunk", cid) for bm25, dense in found for cid, _ in bm25 + dense}
    return found, {key[1]: value for key, value in chunk_labels(keys).items()}


def ndcg(ranked_ids, labels, queries) -> float:
    from kb.evaluation import score_lists

    return score_lists([[labels.get(i, set()) for i in ids[:10]] for ids in ranked_ids], queries).ndcg10


def single(found, labels, queries, which: int) -> float:
    return ndcg([[i for i, _ in f[which]] for f in found], labels, queries)


def two_fold(method, grid, found, labels, queries):
    halves = [list(range(0, len(queries), 2)), list(range(1, len(queries), 2))]
    total, chosen = 0.0, []
    for train, test in ((halves[0], halves[1]), (halves[1], halves[0])):
        def score(setting, part):
            return ndcg([method(found[i], *setting) for i in part], labels, [queries[i] for i in part])
        best = max(grid, key=lambda s: score(s, train))
        chosen.append(best)
        total += score(best, test) * len(test)
    return total / len(queries), chosen


def rrf(f, weight, k):
    scores: dict[int, float] = {}
    for w, ranking in ((1 - weight, f[0]), (weight, f[1])):
        for rank, (i, _) in enumerate(ranking, start=1):
            scores[i] = scores.get(i, 0.0) + w / (k + rank)
    return sorted(scores, key=lambda i: -scores[i])


def combine(f, alpha, normalise):
    scores: dict[int, float] = {}
    for w, ranking in ((1 - alpha, f[0]), (alpha, f[1])):
        if not ranking:
            continue
        values = normalise(np.asarray([s for _, s in ranking], dtype=np.float64))
        for (i, _), v in zip(ranking, values, strict=True):
            scores[i] = scores.get(i, 0.0) + w * v
    return sorted(scores, key=lambda i: -scores[i])


def minmax(f, alpha):
    def normalise(v):
        span = v.max() - v.min()
        return (v - v.min()) / span if span > 0 else np.ones_like(v)
    return combine(f, alpha, normalise)


def dbsf(f, alpha):
    def normalise(v):
        mean, std = v.mean(), v.std()
        if std == 0:
            return np.ones_like(v)
        low, high = mean - 3 * std, mean + 3 * std
        return np.clip((v - low) / (high - low), 0, 1)
    return combine(f, alpha, normalise)


def rrf_adaptive(f, low, high, k):
    top_bm25, top_dense = {i for i, _ in f[0][:10]}, {i for i, _ in f[1][:10]}
    overlap = len(top_bm25 & top_dense) / 10
    return rrf(f, low + (high - low) * overlap, k)


def jieba_search_bm25(kb, queries):
    """BM25 top 100 per query with jieba's search mode for the chunks (finer, overlapping words)."""
    from kb.models import Chunk
    from kb.retrieval.analyzer import CHINESE_STOP_WORDS, CJK_RUN, analyze, english_terms, jieba_tokenizer
    from kb.retrieval.bm25 import build_bm25

    def index_terms(text: str) -> list[str]:
        terms, position = [], 0
        for match in CJK_RUN.finditer(text):
            terms.extend(english_terms(text[position:match.start()]))
            terms.extend(w for w in jieba_tokenizer().cut_for_search(match.group())
                         if w.strip() and w not in CHINESE_STOP_WORDS)
            position = match.end()
        return terms + english_terms(text[position:])

    rows = list(Chunk.objects.filter(document__knowledge_base=kb).order_by("id").values_list("id", "text"))
    bm25 = build_bm25([index_terms(text) for _, text in rows])
    out = []
    for q in queries:
        ids, scores = bm25.top(index_terms(q.query) or analyze(q.query), 100)
        out.append([(rows[i][0], float(s)) for i, s in zip(ids, scores, strict=True)])
    return out


def with_bm25(found, bm25_lists):
    return [(b, f[1]) for f, b in zip(found, bm25_lists, strict=True)]


def report(name: str, method: str, score: float, chosen) -> None:
    print(f"| {name} | {method} | {score:.3f} | {chosen} |")


if __name__ == "__main__":
    main()
