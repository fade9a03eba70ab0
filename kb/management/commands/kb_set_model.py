"""``manage.py kb_set_model KB NAME``: switch a knowledge base to another embedding model.

NAME is a bundled model, a name registered in ``KEFU_EMBEDDING_MODELS`` or one of the base's tuned models
(``--list`` shows them). The switch runs in this process with a progress line (``--enqueue``: on the
ingest queue instead, as the KB page's form does): every chunk and FAQ phrasing is embedded again into a
new index version, and the base keeps serving its current index until the swap (kb.model_switch).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from kb.embedding import knowledge_base_model, model_choices
from kb.management.progress import run_with_progress
from kb.model_switch import SwitchRejected, model_switch_run, model_switch_start
from kb.models import KnowledgeBase, TuningRun
from kb.selectors import knowledge_base_get


class Command(BaseCommand):
    help = "Switch a knowledge base to another embedding model (re-embedded into a new index version)."

    def add_arguments(self, parser):
        parser.add_argument("kb", help="knowledge base id, slug or name")
        parser.add_argument("name", nargs="?", default="", help="the embedding model to switch to")
        parser.add_argument("--list", action="store_true", help="list the models this base may switch to")
        parser.add_argument("--enqueue", action="store_true", help="queue the switch for the ingest worker")

    def handle(self, *args, kb: str, name: str, list: bool, enqueue: bool, **options):
        try:
            knowledge_base = knowledge_base_get(ref=kb)
        except KnowledgeBase.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        if list or not name:
            self.list_models(knowledge_base)
            if not list:
                raise CommandError("Name the embedding model to switch to.")
            return
        try:
            run = model_switch_start(knowledge_base=knowledge_base, name=name, enqueue=enqueue)
        except SwitchRejected as exc:
            raise CommandError(str(exc)) from exc
        if enqueue:
            self.stdout.write(f"Queued the switch of {knowledge_base.name!r} to {name}; the KB page shows its "
                              "progress.")
            return
        run = run_with_progress(self.stdout, run, model_switch_run)
        if run.status == TuningRun.Status.FAILED:
            raise CommandError(f"The switch failed; {run.base_model} keeps serving: {run.error_message}")
        style = self.style.SUCCESS if run.adopted else self.style.WARNING
        self.stdout.write(style(f"{run.reason} ({run.seconds:.0f} s)"))

    def list_models(self, knowledge_base: KnowledgeBase) -> None:
        current = knowledge_base_model(knowledge_base)
        for model in dict.fromkeys([current, *model_choices(knowledge_base.slug)]):
            self.stdout.write(f"{'*' if model == current else ' '} {model}")
