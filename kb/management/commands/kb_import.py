"""``manage.py kb_import KB PATH...``: upload files, folders (recursively) and FAQ sheets, then ingest.

Ingestion runs in this process, one document after another, with a progress bar; the index
is built once at the end of the batch. ``--enqueue`` hands the documents to the ingest
queue instead (service mode).
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from kb.ingestion import document_ingest
from kb.models import Document, KnowledgeBase
from kb.selectors import knowledge_base_get
from kb.services import UploadRejected, document_upload

SKIP_NAMES = {".DS_Store", "Thumbs.db"}


class Command(BaseCommand):
    help = "Import files, folders and FAQ sheets into a knowledge base."

    def add_arguments(self, parser):
        parser.add_argument("kb", help="knowledge base id, slug or name")
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--enqueue", action="store_true", help="queue the work for the ingest worker")

    def handle(self, *args, kb, paths, enqueue, **options):
        try:
            knowledge_base = knowledge_base_get(ref=kb)
        except KnowledgeBase.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        files = list(expand(paths))
        if not files:
            raise CommandError("No files found under the given paths.")
        documents, duplicates, rejected = [], 0, 0
        for path in files:
            try:
                result = document_upload(knowledge_base=knowledge_base, filename=path.name, data=path.read_bytes(),
                                         enqueue=enqueue)
            except UploadRejected as exc:
                rejected += 1
                self.stderr.write(f"skipped: {exc}")
                continue
            if result.created:
                documents.append(result.document.pk)
            else:
                duplicates += 1
        if not enqueue:
            self.ingest(documents)
        self.report(knowledge_base, documents, duplicates, rejected, enqueue)

    def ingest(self, document_ids: list[int]) -> None:
        for done, document_id in enumerate(document_ids, start=1):
            document = document_ingest(document_id=document_id)
            self.progress(done, len(document_ids), document.title)
            if document.status == "failed":
                self.stderr.write(f"\nfailed: {document.title}: {document.error_message}")
        if document_ids:
            self.stdout.write("")

    def progress(self, done: int, total: int, title: str) -> None:
        width = 30
        filled = width * done // total
        bar = "#" * filled + "-" * (width - filled)
        self.stdout.write(f"\r[{bar}] {done}/{total} {title[:40]:<40}", ending="")
        sys.stdout.flush()

    def report(self, kb, documents, duplicates, rejected, enqueue) -> None:
        if enqueue:
            self.stdout.write(f"Queued {len(documents)} document(s); {duplicates} already present; {rejected} rejected.")
            return
        statuses = Document.objects.filter(pk__in=documents)
        ready = statuses.filter(status=Document.Status.READY).count()
        failed = statuses.filter(status=Document.Status.FAILED).count()
        self.stdout.write(self.style.SUCCESS(
            f"Imported into {kb.name!r}: {ready} ready, {failed} failed, {duplicates} already present, "
            f"{rejected} rejected."))


def expand(paths: list[Path]):
    for path in paths:
        if not path.exists():
            raise CommandError(f"{path}: no such file or folder")
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.name not in SKIP_NAMES and not child.name.startswith("."):
                    yield child
        else:
            yield path
