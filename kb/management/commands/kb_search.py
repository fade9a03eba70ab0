"""``manage.py kb_search KB "query" [-k N] [--json]``: the fused hits, with who found them."""

from __future__ import annotations

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from kb.models import KnowledgeBase
from kb.search import hybrid
from kb.selectors import knowledge_base_get


class Command(BaseCommand):
    help = "Search a knowledge base (hybrid BM25 + dense)."

    def add_arguments(self, parser):
        parser.add_argument("kb", help="knowledge base id, slug or name")
        parser.add_argument("query")
        parser.add_argument("-k", type=int, default=None)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, kb, query, k, json: bool, **options):
        try:
            knowledge_base = knowledge_base_get(ref=kb)
        except KnowledgeBase.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        hits = hybrid(knowledge_base, query, k or knowledge_base.top_k)
        if json:
            self.stdout.write(dumps([hit_dict(h) for h in hits]))
            return
        if not hits:
            self.stdout.write("No hits (is the knowledge base indexed?).")
        for rank, hit in enumerate(hits, start=1):
            found = ", ".join(f"{name} #{r.rank}" for name, r in hit.found_by.items())
            self.stdout.write(f"{rank}. [{hit.score:.4f}] {hit.source}  ({found})")
            if hit.is_faq:
                self.stdout.write(f"   FAQ (similarity {hit.similarity:.3f}): {hit.faq_question}")
            self.stdout.write("   " + " ".join(hit.text.split())[:300])


def hit_dict(hit) -> dict:
    data = asdict(hit)
    data["found_by"] = {name: asdict(r) for name, r in hit.found_by.items()}
    data["source"] = hit.source
    return data


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)
