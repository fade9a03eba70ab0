"""Tuning a base's embedder, measured: the 2-fold gain on the base's own pairs, the time, and retrieval of
unseen paraphrases before and after.

    KEFU_DATA_DIR=/tmp/kefu-bench .venv/bin/python manage.py demo_setup
    KEFU_DATA_DIR=/tmp/kefu-bench .venv/bin/python bench/kb_tune.py demo-zaragoza \\
        --questions chat/data/eval/zaragoza.jsonl [--method full|lora] [--epochs 2]

The paraphrase questions (rows with ``"expect": "in_base"`` and a ``faq_id``) are only measured, never
trained on: the tuning reads the base's own rows. A question's relevant item is its FAQ entry or the
document holding its answer (both carry the FAQ id as external id). Prints markdown tables; the base
ends up on the tuned model when the run adopted it (use a throwaway data dir).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")


def paraphrases(path: Path):
    from kb.evaluation import EvalQuery

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [EvalQuery(row["question"], tuple(ids) if isinstance(ids := row["faq_id"], list) else (ids,))
            for row in rows if row.get("expect") == "in_base" and row.get("faq_id")]


def measure(kb, queries) -> dict:
    from kb.evaluation import knowledge_base_evaluate

    kb.refresh_from_db()
    return knowledge_base_evaluate(knowledge_base=kb, queries=queries, include_faq=True)


def main() -> None:
    import django

    django.setup()
    from kb.selectors import knowledge_base_get
    from kb.tuning import TuningConfig, tuning_run, tuning_start

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kb")
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--method", default="full", choices=("full", "lora"))
    parser.add_argument("--epochs", type=int, default=TuningConfig.epochs)
    args = parser.parse_args()
    kb = knowledge_base_get(ref=args.kb)
    queries = paraphrases(args.questions)
    before = measure(kb, queries)
    started = time.perf_counter()
    run = tuning_run(run_id=tuning_start(knowledge_base=kb, enqueue=False, method=args.method).pk,
                     config=TuningConfig(epochs=args.epochs))
    seconds = time.perf_counter() - started
    after = measure(kb, queries)
    print(f"\n{kb.name}: {run.pair_count} pairs, {run.method}, {args.epochs} epochs, {seconds:.0f} s wall "
          f"({os.cpu_count()} CPUs); {run.status}: {run.reason or run.error_message}\n")
    print("| fold | training pairs | held-out questions | nDCG@10 before | after |\n|---|---|---|---|---|")
    for fold in run.folds:
        print(f"| {fold['fold'] + 1} | {fold['train_pairs']} | {fold['test_queries']} | {fold['before']:.3f} | "
              f"{fold['after']:.3f} |")
    print(f"\nParaphrases ({len(queries)} in-base questions of {args.questions.name}), model "
          f"{run.base_model} → {kb.embedding_model}:\n")
    print("| retriever | nDCG@10 before | after | R@1 before | after | MRR@10 before | after |\n|---|---|---|---|---|---|---|")
    for name in ("dense", "hybrid", "bm25"):
        b, a = before[name], after[name]
        print(f"| {name} | {b.ndcg10:.3f} | {a.ndcg10:.3f} | {b.recall1:.3f} | {a.recall1:.3f} | "
              f"{b.mrr10:.3f} | {a.mrr10:.3f} |")


if __name__ == "__main__":
    main()
