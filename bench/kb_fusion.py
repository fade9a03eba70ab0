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

Hybrid pseudo-relevance feedback (session 3). Each is seeded by the top m chunks of a min-max fusion
with dense weight a₀ (tuned), rescores the pool (union of both candidate lists; rm3: a fresh BM25 top
100) and min-max-fuses again with dense weight α (tuned). Chunk vectors are the stored embeddings.
- prf-rocchio: dense query q' = normalise(q + β · mean of the seeds' vectors), pool rescored by q'·v.
- prf-docsim: dense side = γ · minmax(q·v) + (1 - γ) · minmax(mean over seeds d of v_d·v).
- prf-rm3: BM25 query + λ · the seeds' top t terms by tf-idf (weights summing to the query's length),
  run again over the same BM25 index, fused with the original dense list.
Budget: the three sets' ingestion (~2 min on 2 idle cores) plus ~15 min of fusion (the prf grids; prf-rm3 on
zaragoza alone ~6 min).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kb_datasets  # noqa: E402
from kb_eval import build  # noqa: E402

ALPHAS = tuple(float(round(a, 2)) for a in np.arange(0.05, 1.0, 0.05))
RRF_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
RRF_KS = (5, 20, 60)
SEED_ALPHAS = (0.1, 0.3, 0.5, 0.7, 0.9)  # dense weight of the min-max fusion that picks the feedback chunks
SEED_DEPTHS = (1, 2, 3, 5)
ROCCHIO_BETAS = (0.3, 0.5, 1.0, 2.0)
DOCSIM_GAMMAS = (0.0, 0.25, 0.5, 0.75)
RM3_TERMS = (5, 10, 20)
RM3_LAMBDAS = (0.3, 0.5, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="zaragoza,debian-en,debian-zh")
    args = parser.parse_args()
    kb_datasets.django_setup()
    print("| set | method | nDCG@10 (2-fold) | settings chosen per fold |")
    print("|---|---|---|---|")
    for name in args.only.split(","):
        kb, queries, _, _ = build(name)
        found, labels, vectors = collect(kb, queries)
        found = with_corpus(found, corpus_load(kb), vectors, queries)
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
        prf_rocchio: list(itertools.product(SEED_ALPHAS, SEED_DEPTHS, ROCCHIO_BETAS, ALPHAS)),
        prf_docsim: list(itertools.product(SEED_ALPHAS, SEED_DEPTHS, DOCSIM_GAMMAS, ALPHAS)),
        prf_rm3: list(itertools.product(SEED_ALPHAS, SEED_DEPTHS, RM3_TERMS, RM3_LAMBDAS, ALPHAS)),
    }


def collect(kb, queries):
    """Per query: ([(chunk id, score)] bm25, [(chunk id, score)] dense); chunk id → labels; query vectors."""
    from django.conf import settings

    from kb.embedding import embed_texts
    from kb.evaluation import chunk_candidates, chunk_labels
    from kb.indexing import ROW_CHUNK, active_index
    from kb.retrieval.search import candidates

    index = active_index(kb.pk)
    vectors = embed_texts([q.query for q in queries], batch_size=settings.KEFU_KB_EMBED_BATCH)
    found = []
    for q, vector in zip(queries, vectors, strict=True):
        c = chunk_candidates(candidates(index, q.query, settings.KEFU_KB_CANDIDATES, query_vector=vector))
        found.append(([(key[1], s) for key, s in c.bm25], [(key[1], s) for key, s in c.dense]))
    keys = {("chunk", cid) for cid in index.rows.refs[index.rows.kinds == ROW_CHUNK].tolist()}
    return found, {key[1]: value for key, value in chunk_labels(keys).items()}, np.asarray(vectors)


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


@dataclass(frozen=True)
class Corpus:
    """Every chunk of a set, in row order: ids, stored vectors, analysed terms, and BM25 over those terms."""

    ids: np.ndarray  # (N,) chunk ids
    rows: dict[int, int]  # chunk id → row
    vectors: np.ndarray  # (N, d) L2-normalised embeddings
    terms: list[Counter]  # analyzer terms per chunk, with counts
    idf: dict[str, float]  # ln(N / document frequency)
    bm25: object  # kb.retrieval.bm25.Bm25Index over ``terms`` (what the live index holds for chunks)


class Query(NamedTuple):
    """One query's candidates (``f[0]``, ``f[1]`` as the other methods read them) plus what PRF needs."""

    bm25: list[tuple[int, float]]
    dense: list[tuple[int, float]]
    vector: np.ndarray
    text: str
    corpus: Corpus
    memo: dict  # per-query cache: pool, seeds, expanded BM25 lists


class Pool(NamedTuple):
    """The union of both candidate lists (bm25's order, then dense-only items), min-max scores 0 where absent."""

    ids: np.ndarray
    rows: np.ndarray
    bm25: np.ndarray
    dense: np.ndarray


def corpus_load(kb) -> Corpus:
    from kb.models import Chunk

    return corpus_build(list(Chunk.objects.filter(document__knowledge_base=kb).order_by("id").values_list(
        "id", "text", "embedding")))


def corpus_build(rows: list[tuple[int, str, bytes]]) -> Corpus:
    from kb.retrieval.analyzer import analyze
    from kb.retrieval.bm25 import build_bm25

    terms = [analyze(text) for _, text, _ in rows]
    frequency = Counter(t for doc in terms for t in set(doc))
    return Corpus(
        ids=np.asarray([r[0] for r in rows], dtype=np.int64),
        rows={r[0]: n for n, r in enumerate(rows)},
        vectors=np.stack([np.frombuffer(bytes(r[2]), dtype=np.float32) for r in rows]),
        terms=[Counter(doc) for doc in terms],
        idf={t: math.log(len(rows) / n) for t, n in frequency.items()},
        bm25=build_bm25(terms),
    )


def with_corpus(found, corpus: Corpus, vectors: np.ndarray, queries) -> list[Query]:
    return [Query(b, d, v, q.query, corpus, {}) for (b, d), v, q in zip(found, vectors, queries, strict=True)]


def normalised(values: np.ndarray) -> np.ndarray:
    span = values.max() - values.min() if values.size else 0.0
    return (values - values.min()) / span if span > 0 else np.ones_like(values)


def pool(f: Query) -> Pool:
    if "pool" not in f.memo:
        ids = list(dict.fromkeys([i for i, _ in f.bm25] + [i for i, _ in f.dense]))
        position = {i: n for n, i in enumerate(ids)}
        sides = []
        for ranking in (f.bm25, f.dense):
            side = np.zeros(len(ids))
            if ranking:
                side[[position[i] for i, _ in ranking]] = normalised(np.asarray([s for _, s in ranking], dtype=np.float64))
            sides.append(side)
        f.memo["pool"] = Pool(np.asarray(ids, dtype=np.int64), np.asarray([f.corpus.rows[i] for i in ids], dtype=np.int64),
                              *sides)
    return f.memo["pool"]


def ranked(p: Pool, scores: np.ndarray) -> list[int]:
    return p.ids[np.argsort(-scores, kind="stable")].tolist()


def seeds(f: Query, seed_alpha: float, m: int) -> np.ndarray:
    """Corpus rows of the top m chunks of the min-max fusion with dense weight ``seed_alpha``."""
    key = ("seeds", seed_alpha, m)
    if key not in f.memo:
        p = pool(f)
        order = np.argsort(-((1 - seed_alpha) * p.bm25 + seed_alpha * p.dense), kind="stable")
        f.memo[key] = p.rows[order[:m]]
    return f.memo[key]


def prf_rocchio(f: Query, seed_alpha: float, m: int, beta: float, alpha: float) -> list[int]:
    p = pool(f)
    expanded = f.vector + beta * f.corpus.vectors[seeds(f, seed_alpha, m)].mean(axis=0)
    dense = normalised(f.corpus.vectors[p.rows] @ (expanded / np.linalg.norm(expanded)))
    return ranked(p, (1 - alpha) * p.bm25 + alpha * dense)


def prf_docsim(f: Query, seed_alpha: float, m: int, gamma: float, alpha: float) -> list[int]:
    p = pool(f)
    vectors = f.corpus.vectors[p.rows]
    to_query = normalised(vectors @ f.vector)
    to_seeds = normalised(vectors @ f.corpus.vectors[seeds(f, seed_alpha, m)].mean(axis=0))
    return ranked(p, (1 - alpha) * p.bm25 + alpha * (gamma * to_query + (1 - gamma) * to_seeds))


def prf_rm3(f: Query, seed_alpha: float, m: int, terms: int, lam: float, alpha: float) -> list[int]:
    return minmax((expanded_bm25(f, seed_alpha, m, terms, lam), f.dense), alpha)


def expanded_bm25(f: Query, seed_alpha: float, m: int, terms: int, lam: float) -> list[tuple[int, float]]:
    """BM25 top 100 for the query's terms plus λ · the seeds' top terms (by tf-idf), over the same index."""
    from kb.retrieval.analyzer import analyze

    key = ("rm3", seed_alpha, m, terms, lam)
    if key not in f.memo:
        c = f.corpus
        query = Counter(analyze(f.text))
        weights: Counter = Counter()
        for row in seeds(f, seed_alpha, m).tolist():
            length = sum(c.terms[row].values()) or 1
            for term, tf in c.terms[row].items():
                weights[term] += tf / length * c.idf[term]
        top = weights.most_common(terms)
        scale = lam * max(sum(query.values()), 1) / (sum(w for _, w in top) or 1.0)
        for term, weight in top:
            query[term] += scale * weight
        f.memo[key] = bm25_top(c, query, 100)
    return f.memo[key]


def bm25_top(c: Corpus, query: Counter, k: int) -> list[tuple[int, float]]:
    """BM25 with weighted query terms (``Bm25Index.scores`` counts repeats; here a term's weight may be fractional)."""
    known = [(c.bm25.vocabulary[t], w) for t, w in query.items() if t in c.bm25.vocabulary]
    if not known:
        return []
    scores = np.asarray(c.bm25.weights[:, [i for i, _ in known]] @ np.asarray([w for _, w in known])).ravel()
    positive = np.flatnonzero(scores > 0)
    order = positive[np.argsort(-scores[positive], kind="stable")][:k]
    return [(int(c.ids[r]), float(scores[r])) for r in order]


def with_bm25(found, bm25_lists):
    return [(b, f[1]) for f, b in zip(found, bm25_lists, strict=True)]


def report(name: str, method: str, score: float, chosen) -> None:
    print(f"| {name} | {method} | {score:.3f} | {chosen} |")


if __name__ == "__main__":
    main()
