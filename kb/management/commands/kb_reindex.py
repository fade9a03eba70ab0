"""``manage.py kb_reindex [KB ...] [--backend local|milvus] [--no-gate]``: build a new index version of each base.

Moving bases to Milvus: set KEFU_MILVUS_URI, run ``kb_reindex --backend milvus`` (every base, or the
ones named), then set KEFU_SEARCH_BACKEND=milvus so later builds go there too. Each base keeps
serving its current version until its new one is written and activated (an ordinary atomic build);
a base that fails is reported and the others go on. Exit status 1 when any base failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError

from kb.indexing import index_build
from kb.models import IndexVersion, KnowledgeBase
from kb.search_backends import (
    BACKENDS,
    SearchBackendConfigError,
    SearchBackendUnavailable,
    backend_named,
    configured_name,
)
from kb.selectors import knowledge_base_get


@dataclass(frozen=True)
class Reindexed:
    slug: str
    number: int | None
    status: str
    rows: int
    seconds: float
    error: str = ""


def reindex(knowledge_base: KnowledgeBase, *, backend: str, gate: bool) -> Reindexed:
    """One base's new version on ``backend``, or why it could not be built."""
    started = time.perf_counter()
    try:
        version = index_build(knowledge_base_id=knowledge_base.pk, backend=backend, gate=gate)
    except (SearchBackendUnavailable, OSError, ValueError, RuntimeError) as exc:
        return Reindexed(knowledge_base.slug, None, "failed", 0, time.perf_counter() - started,
                         f"{type(exc).__name__}: {exc}")
    rows = version.chunk_count + version.faq_count
    return Reindexed(knowledge_base.slug, version.number, version.status, rows, time.perf_counter() - started)


class Command(BaseCommand):
    help = "Rebuild knowledge-base indexes, optionally on another search backend (moves bases to Milvus)."

    def add_arguments(self, parser):
        parser.add_argument("kb", nargs="*", help="knowledge base ids, slugs or names (default: every base)")
        parser.add_argument("--backend", choices=BACKENDS, default="",
                            help="where the new versions go (default: KEFU_SEARCH_BACKEND)")
        parser.add_argument("--no-gate", action="store_true",
                            help="activate without the regression gate's comparison")

    def handle(self, *args, kb: list[str], backend: str, no_gate: bool, **options):
        try:
            bases = [knowledge_base_get(ref=ref) for ref in kb] or list(KnowledgeBase.objects.order_by("pk"))
        except KnowledgeBase.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        try:
            status = backend_named(backend or configured_name()).status()
        except SearchBackendConfigError as exc:
            raise CommandError(str(exc)) from exc
        if not status.ok:
            raise CommandError(f"the {status.name} search backend does not answer: {status.detail}")
        failed = 0
        for knowledge_base in bases:
            result = reindex(knowledge_base, backend=status.name, gate=not no_gate)
            self.stdout.write(line(result, status.name))
            failed += result.status == "failed"
        if failed:
            raise CommandError(f"{failed} of {len(bases)} base(s) failed; they keep serving their previous version")


def line(result: Reindexed, backend: str) -> str:
    if result.status == "failed":
        return f"{result.slug}: failed after {result.seconds:.1f} s ({result.error})"
    held = " — held by the regression gate, the previous version serves" if result.status == IndexVersion.Status.HELD else ""
    return f"{result.slug}: v{result.number} on {backend}, {result.rows} rows in {result.seconds:.1f} s{held}"
