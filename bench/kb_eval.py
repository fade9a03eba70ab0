"""Retrieval quality of the kb app on real data, against a LangChain-style ensemble, in one run.

    .venv/bin/python bench/kb_eval.py [--only zaragoza,debian-en,debian-zh] [--queries-dir DIR]

Each set is built through the real upload → parse → chunk → embed → index path
(see bench/kb_datasets.py). Rows per set:
- bm25, dense, hybrid: ``kb.search`` with the base's fusion weight. On zaragoza the weight is
  tuned on the base's own question → answer-document pairs (weight and RRF k) with 2-fold cross-validation
  (tuned on half the queries, scored on the other half), so no query scores a weight it chose.
  Debian has no FAQ pairs, so it uses the default ``KEFU_KB_DENSE_WEIGHT``.
- hybrid equal RRF: the same candidates, weights 0.5/0.5 (the naive hybrid).
- langchain-style: rank_bm25.BM25Okapi on whitespace-split text (BM25Retriever's default
  preprocessing) + FAISS flat on the same embeddings, top 4 each, weighted RRF 0.5/0.5, k=60
  (EnsembleRetriever's defaults).

Budget: ~3 min on 2 cores (embedding the three sets dominates), < 1.5 GB RAM.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kb_datasets  # noqa: E402

COLUMNS = ("nDCG@10", "R@1", "R@5", "R@10", "MRR@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="zaragoza,debian-en,debian-zh")
    parser.add_argument("--queries-dir", type=Path, default=None, help="also write each set's queries here")
    args = parser.parse_args()
    kb_datasets.django_setup()
    print_header()
    for name in args.only.split(","):
        started = time.perf_counter()
        kb, queries, seconds, chunks = build(name)
        if args.queries_dir:
            args.queries_dir.mkdir(parents=True, exist_ok=True)
            kb_datasets.write_queries(queries, args.queries_dir / f"{name}.jsonl")
        for method, metrics in evaluate_set(name, kb, queries).items():
            print_row(name, method, metrics)
        print(f"| {name} | _{len(queries)} queries, {chunks} chunks, ingested in {seconds:.1f} s "
              f"({chunks / seconds:.0f} chunks/s); set total {time.perf_counter() - started:.0f} s_ |||||||")
        sys.stdout.flush()


def build(name: str):
    if name == "zaragoza":
        return kb_datasets.build_zaragoza()
    if name == "debian-en":
        return kb_datasets.build_debian(kb_datasets.DEBIAN_EN, "*.en.html", "Bench debian-en", "en")
    if name == "debian-zh":
        return kb_datasets.build_debian(kb_datasets.DEBIAN_ZH, "*.zh-cn.html", "Bench debian-zh", "zh")
    raise SystemExit(f"unknown set {name!r}")


def evaluate_set(name: str, kb, queries) -> dict:
    from kb.evaluation import fusion_weight_tune, knowledge_base_evaluate, score_lists

    rows = {}
    if name == "zaragoza":
        rows.update(cross_validated(kb, queries))
    else:
        rows.update({f"{m} (w_dense={kb.fusion_dense_weight}, k={kb.fusion_rrf_k})" if m == "hybrid" else m: v
                     for m, v in knowledge_base_evaluate(knowledge_base=kb, queries=queries).items()})
    _, per_weight = fusion_weight_tune(knowledge_base=kb, pairs=queries, grid=(0.5,), k_grid=(60,), save=False)
    rows["hybrid, equal-weight RRF (0.5/0.5, k=60)"] = type(next(iter(rows.values())))(
        per_weight[(0.5, 60)], *[float("nan")] * 4, queries=len(queries))
    rows["langchain-style ensemble"] = score_lists(langchain_style(kb, queries), queries)
    return rows


def cross_validated(kb, queries) -> dict:
    """bm25/dense on all queries; hybrid with a weight tuned on the other fold."""
    from kb.evaluation import Metrics, fusion_weight_tune, knowledge_base_evaluate

    folds = [queries[0::2], queries[1::2]]
    hybrid_parts, weights = [], []
    base = knowledge_base_evaluate(knowledge_base=kb, queries=queries)
    for train, test in ((folds[0], folds[1]), (folds[1], folds[0])):
        weight, _ = fusion_weight_tune(knowledge_base=kb, pairs=train, save=True)
        weights.append(weight)
        hybrid_parts.append(knowledge_base_evaluate(knowledge_base=kb, queries=test)["hybrid"])
    n = sum(m.queries for m in hybrid_parts)
    merged = Metrics(*[sum(getattr(m, f) * m.queries for m in hybrid_parts) / n
                       for f in ("ndcg10", "recall1", "recall5", "recall10", "mrr10")], queries=n)
    return {"bm25": base["bm25"], "dense": base["dense"],
            f"hybrid (w_dense, k tuned on the other fold: {weights[0]}, {weights[1]})": merged}


def langchain_style(kb, queries):
    """rank_bm25 on str.split + FAISS flat (same vectors), top 4 each, RRF 0.5/0.5 k=60."""
    import faiss
    import numpy as np
    from rank_bm25 import BM25Okapi

    from kb.embedding import embed_texts
    from kb.models import Chunk
    from kb.retrieval.fusion import weighted_rrf

    rows = list(Chunk.objects.filter(document__knowledge_base=kb).order_by("id").values_list(
        "text", "embedding", "document__title", "document__external_id", "heading_path"))
    labels = [{t, e, h.split(" > ")[-1] if h else ""} - {""} for _, _, t, e, h in rows]
    bm25 = BM25Okapi([text.split() for text, *_ in rows])
    vectors = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=np.float32).reshape(len(rows), -1)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    query_vectors = embed_texts([q.query for q in queries])
    ranked = []
    for q, vector in zip(queries, query_vectors, strict=True):
        sparse = np.argsort(-bm25.get_scores(q.query.split()), kind="stable")[:4]
        _, dense = index.search(vector.reshape(1, -1), 4)
        fused = weighted_rrf({"bm25": [(int(i), 0.0) for i in sparse], "dense": [(int(i), 0.0) for i in dense[0]]},
                             weights={"bm25": 0.5, "dense": 0.5}, k=60, limit=10)
        ranked.append([labels[f.key] for f in fused])
    return ranked


def print_header() -> None:
    print("| set | method | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))


def print_row(name: str, method: str, metrics) -> None:
    values = [metrics.ndcg10, metrics.recall1, metrics.recall5, metrics.recall10, metrics.mrr10]
    print(f"| {name} | {method} | " + " | ".join("—" if v != v else f"{v:.3f}" for v in values) + " |")


if __name__ == "__main__":
    main()
