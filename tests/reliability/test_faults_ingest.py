"""The process building an index is killed mid-build: the old index keeps serving, the document is
retried, and the next successful build leaves no orphan files.

The kill lands at an exact point: ``KEFU_TEST_PAUSE_AT=index_files_written=…`` (kefu.faults) makes
the build sleep once the new version's files are in their temporary folder, and the test SIGKILLs
the process there. Service mode kills an ingest worker (the retry is the stale-document reclaim
beat runs); embedded mode kills the web process itself (the retry is its next start).
"""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import WebServer, database_url_of_this_process, http_get
from tests.reliability.faults_support import service_mode_only

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PAUSE = {"KEFU_TEST_PAUSE_AT": "index_files_written=300"}
NEW_DOCUMENT = ("# Solar panels\n\nSolar panels on a tiled roof need a structural survey first. "
                "The inverter is mounted in the attic and carries a ten-year warranty.\n")
PROBES = ("drilling permit for a heat pump", "how long does a tiled roof last", "opening hours")


def served(kb) -> dict[str, list]:
    """What each probe query returns from the base's active index, loaded afresh from disk."""
    from kb.indexing import forget_cached_indexes
    from kb.search import hybrid

    forget_cached_indexes()
    kb.refresh_from_db()
    return {query: [(hit.chunk_id, hit.faq_entry_id) for hit in hybrid(kb, query, 5)] for query in PROBES}


def wait_for(condition, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what} not within {timeout}s\n{log()[-3000:]}")


def temporary_folders(kb_id: int) -> list[Path]:
    from kb.indexing import index_root

    root = index_root(kb_id)
    return [folder for folder in root.iterdir() if ".tmp-" in folder.name] if root.exists() else []


def assert_served_from_the_old_version(kb, before: dict, old_version_id: int) -> None:
    kb.refresh_from_db()
    assert kb.active_index_id == old_version_id
    assert served(kb) == before


def assert_rebuilt_without_orphans(kb, document_id: int, old_number: int) -> None:
    """The document is ready in a newer active version; only ready versions' folders remain."""
    from kb.indexing import index_root
    from kb.models import Document, IndexVersion

    kb.refresh_from_db()
    document = Document.objects.get(pk=document_id)
    assert document.status == "ready", (document.status, document.stage, document.error_message)
    assert kb.active_index.number > old_number
    interrupted = IndexVersion.objects.filter(knowledge_base=kb, status="failed")
    assert interrupted.exists() and "interrupted" in interrupted.first().error_message
    assert temporary_folders(kb.pk) == []
    ready = set(IndexVersion.objects.filter(knowledge_base=kb, status="ready").values_list("number", flat=True))
    on_disk = {int(re.fullmatch(r"v(\d+)", folder.name).group(1)) for folder in index_root(kb.pk).iterdir()}
    assert on_disk <= ready and kb.active_index.number in on_disk
    hits = served(kb)  # the old content is still found, and the new document is now searchable
    assert all(hits.values())
    from kb.search import hybrid

    assert any(hit.document_id == document_id for hit in hybrid(kb, "solar panel inverter warranty", 5))


@service_mode_only("no ingest worker in embedded mode: see the web-process restart test below")
def test_an_ingest_worker_killed_mid_build_leaves_the_old_index_serving(base_a, settings, start_celery_worker):
    # given a served base, and an ingest worker that will pause once a new version's files are written
    from kb.models import Document
    from kb.recovery import documents_resume
    from kb.services import document_upload

    before, old = served(base_a), base_a.active_index
    worker = start_celery_worker(["ingest"], env={**PAUSE, "KEFU_DATA_DIR": str(settings.KEFU_DATA_DIR)})

    # when a document is uploaded and the worker is SIGKILLed in the middle of the index build
    document = document_upload(knowledge_base=base_a, filename="solar.md", data=NEW_DOCUMENT.encode()).document
    wait_for(lambda: "paused at index_files_written" in worker.log(), 240, "the build's pause", worker.log)
    assert temporary_folders(base_a.pk)
    assert_served_from_the_old_version(base_a, before, old.pk)  # during the build
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)

    # then the old version keeps serving the same results, and the document is not ready
    assert_served_from_the_old_version(base_a, before, old.pk)
    assert Document.objects.get(pk=document.pk).status != "ready"

    # when the stale-document reclaim runs (what beat schedules) and a healthy worker takes the retry
    started = time.monotonic()
    assert documents_resume(stale_after=timedelta(0)) == 1
    start_celery_worker(["ingest"], env={"KEFU_DATA_DIR": str(settings.KEFU_DATA_DIR)})
    wait_for(lambda: Document.objects.get(pk=document.pk).status in ("ready", "failed"), 240, "the retry")
    print(f"\ningest worker SIGKILLed mid-build: retried and indexed {time.monotonic() - started:.1f} s after the reclaim")

    # then the document is indexed in a newer version and no orphan files remain
    assert_rebuilt_without_orphans(base_a, document.pk, old.number)


def test_the_web_process_killed_mid_build_in_embedded_mode_recovers_at_its_next_start(base_a, settings, tmp_path):
    # given a served base with a queued document, and a web process (embedded: it ingests in its own threads)
    # that will pause once the new version's files are written
    if os.environ.get("REDIS_URL"):
        pytest.skip("embedded mode only: in service mode the web process does not ingest")
    from kb.models import Document
    from kb.services import document_upload

    before, old = served(base_a), base_a.active_index
    document = document_upload(knowledge_base=base_a, filename="solar.md", data=NEW_DOCUMENT.encode(),
                               enqueue=False).document
    env = {"DATABASE_URL": database_url_of_this_process(), "KEFU_KB_RESUME_ON_START": "1"}
    server = WebServer(Path(settings.KEFU_DATA_DIR), **env, **PAUSE)
    try:
        # when its first request resumes the queued document and the process is SIGKILLed mid-build
        assert http_get(server.base + "/healthz")[0] == 200
        wait_for(lambda: "paused at index_files_written" in server.log_path.read_text(), 240, "the build's pause",
                 server.log_path.read_text)
        assert temporary_folders(base_a.pk)
        assert_served_from_the_old_version(base_a, before, old.pk)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()
    # then the old version keeps serving the same results
    assert_served_from_the_old_version(base_a, before, old.pk)
    assert Document.objects.get(pk=document.pk).status != "ready"

    # when the web process starts again and serves a request
    started = time.monotonic()
    server = WebServer(Path(settings.KEFU_DATA_DIR), **env)
    try:
        assert http_get(server.base + "/healthz")[0] == 200
        wait_for(lambda: Document.objects.get(pk=document.pk).status in ("ready", "failed"), 240, "the retry",
                 server.log_path.read_text)
        print(f"\nweb process SIGKILLed mid-build: restarted and indexed in {time.monotonic() - started:.1f} s")
    finally:
        server.stop()

    # then the document is indexed in a newer version and no orphan files remain
    assert_rebuilt_without_orphans(base_a, document.pk, old.number)
