"""``manage.py kb_resume [--stale-minutes N]``: re-enqueue unfinished documents.

Without ``--stale-minutes`` every queued or half-processed document is enqueued again (no
worker running); with it only those whose progress has not moved for N minutes.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand

from kb.recovery import documents_resume


class Command(BaseCommand):
    help = "Re-enqueue documents left queued or half-processed."

    def add_arguments(self, parser):
        parser.add_argument("--stale-minutes", type=int, default=None)

    def handle(self, *args, stale_minutes, **options):
        stale_after = timedelta(minutes=stale_minutes) if stale_minutes is not None else None
        count = documents_resume(stale_after=stale_after)
        self.stdout.write(f"Re-enqueued {count} document(s).")
