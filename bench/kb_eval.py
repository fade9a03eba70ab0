"""Retrieval quality of the kb app on real data, against a LangChain-style ensemble, in one run.

    .venv/bin/python bench/kb_eval.py [--only zaragoza,debian-en,debian-zh] [--queries-dir DIR]

Each set is built through the real upload → parse → chunk → embed → index path
(see bench/kb_datasets.py). Rows per set:
- bm25, dense, hybrid default: ``kb.search`` with the base's default fusion (``KEFU_KB_DENSE_WEIGHT``,
  or ``KEFU_KB_DENSE_WEIGHT_CJK`` for a Chinese base with the English-only bundled embedder).
- hybrid tuned 2-fold: (dense weight, RRF k) tuned on labelled pairs as ``fusion_weight_tune`` does
  with a base's FAQ pairs — tuned on half the queries, scored on the other half, so no query
  scores a setting it chose.
- hybrid equal RRF: the same candidates, weights 0.5/0.5 (the naive hybrid).
- "· N customer questions" (debian sets): bm25, dense and hybrid on the in-base questions of
  ``chat/data/eval/debian-*.jsonl`` — worded as customers ask, written apart from the documents.
  The heading queries of the rows below are the section titles themselves, which the index holds as
  rows of their own since session 7 (``kb.retrieval.headings``): they now score ~1.0 and only show
  that a title finds its section; the customer questions are the measure.
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
        for method, metrics in customer_question_rows(name, kb).items():  # before any tuning saves a fusion
            print_row(name, method, metrics)
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


def customer_question_rows(name: str, kb) -> dict:
    """bm25 / dense / hybrid on the set's customer questions (``chat/data/eval/<set>.jsonl``), where one exists."""
    from kb.evaluation import knowledge_base_evaluate

    path = kb_datasets.ROOT / "chat" / "data" / "eval" / f"{name}.jsonl"
    if name == "zaragoza" or not path.is_file():  # zaragoza's are labelled by FAQ id: answer_eval scores them
        return {}
    questions = kb_datasets.customer_questions(kb, path)
    found = knowledge_base_evaluate(knowledge_base=kb, queries=questions)
    return {f"{method} · {len(questions)} customer questions": metrics for method, metrics in found.items()}


def evaluate_set(name: str, kb, queries) -> dict:
    from kb.evaluation import fusion_weight_tune, knowledge_base_evaluate, score_lists

    default = (kb.fusion_dense_weight, kb.fusion_rrf_k)  # RRF: new bases start with it
    base = knowledge_base_evaluate(knowledge_base=kb, queries=queries)
    rows = {"bm25": base["bm25"], "dense": base["dense"],
            f"hybrid, default fusion (w_dense={default[0]}, k={default[1]})": base["hybrid"]}
    rows.update(cross_validated(kb, queries, methods=("rrf",)))
    rows.update(cross_validated(kb, queries))
    _, per_weight = fusion_weight_tune(knowledge_base=kb, pairs=queries, grid=(0.5,), k_grid=(60,),
                                       methods=("rrf",), save=False)
    rows["hybrid, equal-weight RRF (0.5/0.5, k=60)"] = type(base["bm25"])(
        per_weight[("rrf", 0.5, 60)], *[float("nan")] * 4, queries=len(queries))
    rows["langchain-style ensemble"] = score_lists(langchain_style(kb, queries), queries)
    return rows


def cross_validated(kb, queries, methods=None) -> dict:
    """Hybrid with (method, weight, k) tuned on labelled pairs, 2-fold: tuned on one half, scored on the other."""
    from kb.evaluation import Metrics, fusion_weight_tune, knowledge_base_evaluate

    folds = [queries[0::2], queries[1::2]]
    parts, settings = [], []
    for train, test in ((folds[0], folds[1]), (folds[1], folds[0])):
        best, _ = fusion_weight_tune(knowledge_base=kb, pairs=train, save=True, **({"methods": methods} if methods else {}))
        settings.append(best)
        parts.append(knowledge_base_evaluate(knowledge_base=kb, queries=test)["hybrid"])
    n = sum(m.queries for m in parts)
    merged = Metrics(*[sum(getattr(m, f) * m.queries for m in parts) / n
                       for f in ("ndcg10", "recall1", "recall5", "recall10", "mrr10")], queries=n)
    label = "RRF only" if methods == ("rrf",) else "RRF or min-max"
    return {f"hybrid, tuned 2-fold, {label} (per fold: {settings[0]}, {settings[1]})": merged}


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
