"""``manage.py kb_tune KB``: tune the base's embedder on its own labelled pairs; adopt it if it helps.

Runs in this process with a progress line (``--enqueue``: on the ingest queue instead). The
2-fold held-out nDCG@10 gain decides adoption (kb.tuning); ``--measure-only`` stops after the folds.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from kb.management.progress import run_with_progress
from kb.models import KnowledgeBase, TuningRun
from kb.selectors import knowledge_base_get
from kb.tuning import METHODS, TuningConfig, TuningRejected, tuning_run, tuning_start


class Command(BaseCommand):
    help = "Tune a knowledge base's embedding model on its own FAQ and section pairs."

    def add_arguments(self, parser):
        parser.add_argument("kb", help="knowledge base id, slug or name")
        parser.add_argument("--method", choices=METHODS, default="", help="full fine-tuning or LoRA (default: full)")
        parser.add_argument("--epochs", type=int, default=TuningConfig.epochs)
        parser.add_argument("--measure-only", action="store_true", help="measure the 2-fold gain; adopt nothing")
        parser.add_argument("--enqueue", action="store_true", help="queue the job for the ingest worker")

    def handle(self, *args, kb, method, epochs, measure_only, enqueue, **options):
        try:
            knowledge_base = knowledge_base_get(ref=kb)
        except KnowledgeBase.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        if epochs < 1:
            raise CommandError("--epochs must be at least 1.")
        if enqueue and (measure_only or epochs != TuningConfig.epochs):
            raise CommandError("--measure-only and --epochs apply to a run in this process, not to --enqueue.")
        try:
            run = tuning_start(knowledge_base=knowledge_base, enqueue=enqueue, method=method)
        except TuningRejected as exc:
            raise CommandError(str(exc)) from exc
        if enqueue:
            self.stdout.write(f"Queued tuning run {run.pk} of {knowledge_base.name!r}; the KB page shows its progress.")
            return
        run = run_with_progress(self.stdout, run, tuning_run, config=TuningConfig(epochs=epochs),
                                adopt=not measure_only)
        self.report(run)

    def report(self, run: TuningRun) -> None:
        if run.status == TuningRun.Status.FAILED:
            raise CommandError(f"Tuning failed: {run.error_message}")
        for fold in run.folds:
            self.stdout.write(f"fold {fold['fold'] + 1}: {fold['train_pairs']} training pairs, {fold['test_queries']} "
                              f"held-out questions, nDCG@10 {fold['before']:.3f} -> {fold['after']:.3f}")
        style = self.style.SUCCESS if run.adopted else self.style.WARNING
        self.stdout.write(style(f"{run.reason} ({run.pair_count} pairs, {run.method}, {run.seconds:.0f} s)"))
        if run.adopted:
            self.stdout.write(f"The base now embeds with {run.tuned_model}.")


