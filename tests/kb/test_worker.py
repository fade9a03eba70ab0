"""Service mode: a real Celery worker process on the ``ingest`` queue ingests uploads for the web side.

The test process plays the web process: it uploads (the task goes through Redis), waits for
the worker to mark the document ready, and searches. The worker builds each index version;
this process notices the switch by itself (it has the previous version cached).
"""

from __future__ import annotations

import os
import time

import pytest

from kb.models import Document
from kb.search import hybrid
from kb.services import document_upload, knowledge_base_create

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"),
                       reason="service mode only (REDIS_URL unset): embedded mode has no Celery worker; "
                              "its ingest thread is covered by test_ingestion.py and test_upload_browser.py"),
]


def wait_finished(document: Document, timeout: float = 240.0) -> Document:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.status in (Document.Status.READY, Document.Status.FAILED):
            return document
        time.sleep(0.2)
    raise AssertionError(f"document {document.title!r} still {document.status} ({document.stage}) after {timeout} s")


@pytest.mark.django_db(transaction=True)
def test_worker_ingests_uploads_and_the_web_side_notices_each_new_index_version(settings, start_celery_worker,
                                                                                 embedder):
    # given a real ingest worker sharing this process's database and data directory
    assert settings.KEFU_MODE == "service"
    worker = start_celery_worker(["ingest"], env={"KEFU_DATA_DIR": str(settings.KEFU_DATA_DIR)})
    kb = knowledge_base_create(name="Handbook", chunk_size=64, chunk_overlap=8)
    # when a document is uploaded (its task goes through Redis to the worker)
    first = document_upload(knowledge_base=kb, filename="pets.md",
                            data=b"# Pets\n\nCats and small dogs are allowed in the lobby.\n").document
    # then the worker makes it ready and this process finds it
    assert wait_finished(first).status == "ready", worker.log()
    assert [hit.document_title for hit in hybrid(kb, "are cats allowed", 1)] == ["pets"]
    kb.refresh_from_db()
    served = kb.active_index.number
    # when a second document is uploaded while this process has the first version cached
    second = document_upload(knowledge_base=kb, filename="parking.md",
                             data=b"# Parking\n\nParking in the garage is free on Sundays.\n").document
    assert wait_finished(second).status == "ready", worker.log()
    # then the next search here uses the worker's new version without being told
    assert hybrid(kb, "is parking free on sundays", 1)[0].document_title == "parking"
    kb.refresh_from_db()
    assert kb.active_index.number > served
    assert "kb.ingest_document" in worker.log()
