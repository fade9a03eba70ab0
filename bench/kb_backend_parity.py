"""The same bases searched on the local backend and on Milvus: nDCG@10 and the other kb_eval metrics side by side.

    .venv/bin/python bench/kb_backend_parity.py [--only zaragoza,debian-en,debian-zh] [--milvus-uri URI]

Each set is built once through the real upload → parse → chunk → embed → index path on the local
backend (bench/kb_datasets.py, as bench/kb_eval.py does) and evaluated with ``kb.evaluation``; then
the base is moved with ``kb_reindex --backend milvus`` (the same chunks and vectors, nothing
re-embedded) and evaluated again. The issue's bar: hybrid nDCG@10 within 0.02 of local.
``--milvus-uri``: default a Milvus Lite file in the bench's temporary folder.

Budget: ~4 min on 2 cores (embedding the three sets dominates), < 1.5 GB RAM.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kb_datasets  # noqa: E402
from kb_eval import build  # noqa: E402

TOLERANCE = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="zaragoza,debian-en,debian-zh")
    parser.add_argument("--milvus-uri", default="")
    args = parser.parse_args()
    workdir = kb_datasets.django_setup()
    from django.conf import settings

    settings.KEFU_MILVUS_URI = args.milvus_uri or str(workdir / "milvus.db")
    os.environ["KEFU_MILVUS_URI"] = settings.KEFU_MILVUS_URI
    print("| set | retriever | nDCG@10 local | nDCG@10 milvus | Δ | R@1 local | R@1 milvus | within 0.02 |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for name in args.only.split(","):
        kb, queries, _, chunks = build(name)
        local, milvus, seconds = compare(kb, queries)
        for retriever in ("bm25", "dense", "hybrid"):
            a, b = local[retriever], milvus[retriever]
            delta = b.ndcg10 - a.ndcg10
            if retriever == "hybrid":
                worst = max(worst, abs(delta))
            print(f"| {name} | {retriever} | {a.ndcg10:.3f} | {b.ndcg10:.3f} | {delta:+.3f} | {a.recall1:.3f} | "
                  f"{b.recall1:.3f} | {'yes' if abs(delta) <= TOLERANCE else 'NO'} |")
        print(f"| {name} | _{len(queries)} queries, {chunks} chunks; moved to Milvus in {seconds:.1f} s_ |||||||")
        sys.stdout.flush()
    print(f"\nlargest hybrid nDCG@10 difference: {worst:.3f} (bar: {TOLERANCE})")


def compare(kb, queries):
    """(local metrics, Milvus metrics, seconds the move took) of one base."""
    from django.core.management import call_command

    from kb.evaluation import knowledge_base_evaluate

    local = knowledge_base_evaluate(knowledge_base=kb, queries=queries)
    started = time.perf_counter()
    call_command("kb_reindex", kb.slug, "--backend", "milvus", "--no-gate", stdout=io.StringIO())
    seconds = time.perf_counter() - started
    kb.refresh_from_db()
    assert kb.active_index.backend == "milvus", kb.active_index
    return local, knowledge_base_evaluate(knowledge_base=kb, queries=queries), seconds


if __name__ == "__main__":
    main()
