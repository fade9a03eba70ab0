"""Recovery: what a stopped process left unfinished is taken up again — documents, index builds, tuning runs.

It sits above the services, indexing and tuning modules (it calls each of them), so none of them imports
another for it. Called by an embedded web process on its first request, by ``manage.py kb_resume``, and
by the ``kb.reclaim_stale_documents`` task that beat schedules in service mode.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from kb import services
from kb.indexing import versions_interrupted
from kb.models import Document
from kb.tuning import tuning_runs_resume

log = logging.getLogger(__name__)


def documents_resume(*, stale_after: timedelta | None = None) -> int:
    """Re-enqueue documents a stopped process left queued or half-processed; returns how many.

    Without ``stale_after`` (an embedded process starting: nothing else can be working on
    them) every unfinished document is taken; with it (service mode, workers may be busy)
    only those whose progress has not moved for that long. Index builds left "building" the same
    way are marked failed, so the next build removes their temporary folders; a tuning run that was running is
    marked failed, one still queued is enqueued again (``demo_setup`` leaves the demo's that way for the server).
    """
    versions_interrupted(older_than=stale_after)
    tuning_runs_resume(older_than=stale_after)
    unfinished = Document.objects.filter(status__in=Document.ACTIVE_STATUSES)
    if stale_after is not None:
        unfinished = unfinished.filter(updated_at__lt=timezone.now() - stale_after)
    ids = list(unfinished.values_list("id", flat=True))
    # Back to queued (only those still matching), so the tasks may claim them (kb.ingestion.document_claim).
    unfinished.filter(pk__in=ids).update(status=Document.Status.QUEUED, stage="queued", updated_at=timezone.now())
    for document_id in ids:
        services.ingest_enqueue(document_id)
    if ids:
        log.info("re-enqueued %d unfinished document(s)", len(ids))
    return len(ids)
