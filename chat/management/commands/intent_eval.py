"""``python manage.py intent_eval``: accuracy and a confusion matrix of the intent classifier.

Trains on the shipped examples (``chat/data/intents.jsonl``; with ``--kb SLUG`` also that
base's FAQ phrasings) and classifies the held-out file. Takes a few seconds on a CPU
(one embedding pass over ~250 short utterances).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand

from chat.pipeline.intent import HELDOUT_FILE, LABELS, base_model, embed, intent_classify, load_examples
from kb.models import KnowledgeBase


class Command(BaseCommand):
    help = "Print the intent classifier's accuracy and confusion matrix on a held-out labelled file."

    def add_arguments(self, parser):
        parser.add_argument("--file", default="", help="held-out JSONL (text, label); default: the shipped one")
        parser.add_argument("--kb", default="", help="knowledge base slug whose FAQ phrasings join the training set")

    def handle(self, *args, **options):
        examples = load_examples(Path(options["file"]) if options["file"] else HELDOUT_FILE)
        kb_id = version = None
        if options["kb"]:
            kb = KnowledgeBase.objects.get(slug=options["kb"])
            kb_id, version = kb.pk, kb.active_index_id
        vectors = embed([e.text for e in examples], base_model(kb_id))  # the base's own model, as the chat does
        predicted = [intent_classify(text=e.text, query_vector=v, kb_id=kb_id, index_version=version).label
                     for e, v in zip(examples, vectors, strict=True)]
        pairs = Counter((e.label, p) for e, p in zip(examples, predicted, strict=True))
        correct = sum(n for (gold, pred), n in pairs.items() if gold == pred)
        self.stdout.write(f"held-out utterances: {len(examples)}   accuracy: {correct / len(examples):.3f}")
        for lang in sorted({lang_of(e.text) for e in examples}):
            rows = [(e, p) for e, p in zip(examples, predicted, strict=True) if lang_of(e.text) == lang]
            self.stdout.write(f"  {lang}: {sum(e.label == p for e, p in rows) / len(rows):.3f} ({len(rows)})")
        width = max(len(label) for label in LABELS) + 2
        self.stdout.write("confusion (rows: gold, columns: predicted)")
        self.stdout.write(" " * width + "".join(label[:10].rjust(12) for label in LABELS))
        for gold in LABELS:
            cells = "".join(str(pairs.get((gold, pred), 0)).rjust(12) for pred in LABELS)
            self.stdout.write(gold.ljust(width) + cells)


def lang_of(text: str) -> str:
    return "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"
