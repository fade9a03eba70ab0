"""``python manage.py answerability_fit KB``: fit a base's answerability model now and say how it does.

The same fit runs by itself on the ingest queue after every index activation; this command runs it in
the foreground (after changing the shipped out-of-base set, or to read the held-out figures). It prints
the threshold, the held-out out-of-base refusal and in-base loss, and where the model was written.

Budget: see :mod:`chat.answerability_fit` (≈30–60 s for a 500-entry base on two cores).
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from chat.answerability_fit import AnswerabilityFitError, answerability_fit
from chat.pipeline.answerability import model_path
from kb.selectors import knowledge_base_get


class Command(BaseCommand):
    help = "Fit the answerability model of a knowledge base (its own questions vs the shipped out-of-base set)."

    def add_arguments(self, parser):
        parser.add_argument("kb", help="knowledge base slug or id")

    def handle(self, *args, **options):
        try:
            kb = knowledge_base_get(ref=options["kb"])
        except Exception as exc:
            raise CommandError(f"no knowledge base {options['kb']!r}: {exc}") from exc
        started = time.perf_counter()
        try:
            model = answerability_fit(knowledge_base_id=kb.pk)
        except AnswerabilityFitError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{kb.slug} (index version {model.index_version_id}): {model.positives} in-base and "
            f"{model.negatives} out-of-base questions in {time.perf_counter() - started:.1f} s\n"
            f"threshold {model.threshold:.3f}; held out: out-of-base refused {model.heldout_refusal:.3f}, "
            f"in-base refused {model.heldout_in_base_loss:.3f}\n"
            f"written to {model_path(kb.pk, model.index_version_id)}")
