"""``manage.py kb_eval KB --queries FILE.jsonl [--json] [--tune]``: retrieval quality per retriever.

Query lines: ``{"query": "...", "relevant": ["<document title, external id or heading>", ...]}``.
Prints nDCG@10, Recall@1/5/10 and MRR@10 for bm25, dense and hybrid. ``--tune`` first tunes
the base's fusion (dense weight, RRF k) on its own FAQ pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from kb.evaluation import fusion_weight_tune, knowledge_base_evaluate, queries_load
from kb.models import KnowledgeBase
from kb.selectors import knowledge_base_get


class Command(BaseCommand):
    help = "Evaluate retrieval (nDCG@10, Recall@1/5/10, MRR@10) on labelled queries."

    def add_arguments(self, parser):
        parser.add_argument("kb", help="knowledge base id, slug or name")
        parser.add_argument("--queries", type=Path, required=True)
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--tune", action="store_true", help="tune fusion on the base's FAQ pairs first")
        parser.add_argument("--include-faq", action="store_true", help="count FAQ-entry hits too")

    def handle(self, *args, kb, queries: Path, json: bool, tune: bool, include_faq: bool, **options):
        try:
            knowledge_base = knowledge_base_get(ref=kb)
            loaded = queries_load(queries)
        except (KnowledgeBase.DoesNotExist, ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        if tune:
            best, _ = fusion_weight_tune(knowledge_base=knowledge_base)
            self.stderr.write(f"fusion tuned on FAQ pairs: {best[0]}, dense weight {best[1]}"
                              + (f", RRF k {best[2]}" if best[0] == "rrf" else ""))
        results = knowledge_base_evaluate(knowledge_base=knowledge_base, queries=loaded, include_faq=include_faq)
        if json:
            self.stdout.write(dumps({name: m.as_dict() for name, m in results.items()}))
            return
        self.stdout.write(f"{len(loaded)} queries · {knowledge_base.name}")
        self.stdout.write(f"{'retriever':<10} {'nDCG@10':>8} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}")
        for name, m in results.items():
            self.stdout.write(f"{name:<10} {m.ndcg10:8.3f} {m.recall1:6.3f} {m.recall5:6.3f} {m.recall10:6.3f} "
                              f"{m.mrr10:7.3f}")


def dumps(value) -> str:
    return json.dumps(value, indent=2)
