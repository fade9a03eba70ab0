"""Index versions: written beside the active one, switched atomically, noticed by other processes."""

from __future__ import annotations

import pytest

from kb import indexing
from kb.models import IndexVersion
from kb.search import hybrid


def test_new_version_switches_and_cached_index_reloads(kb, ingest):
    # given a base searched once (its index is cached in this process)
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    assert hybrid(kb, "cats", 1)[0].document_title == "a"
    first = indexing.active_index(kb.pk).number
    # when another document is ingested (a new version is built and activated)
    ingest(kb, "b.md", b"# Parking\n\nParking is free on Sundays.\n")
    # then the next search notices the switch without being told
    assert indexing.active_index(kb.pk).number == first + 1
    assert hybrid(kb, "parking sundays", 1)[0].document_title == "b"
    versions = IndexVersion.objects.filter(knowledge_base=kb)
    assert set(versions.values_list("status", flat=True)) == {"ready"}


def test_failed_build_leaves_the_old_version_serving(kb, ingest, monkeypatch):
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    kb.refresh_from_db()
    active = kb.active_index

    def explode(*args, **kwargs):
        raise OSError("no space left")

    monkeypatch.setattr("kb.retrieval.dense.build_dense", explode)
    with pytest.raises(OSError):
        indexing.index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    assert kb.active_index == active
    failed = IndexVersion.objects.get(knowledge_base=kb, status="failed")
    assert "no space left" in failed.error_message
    assert not indexing.version_dir(kb.pk, failed.number).exists()
    assert hybrid(kb, "cats", 1)[0].document_title == "a"


def test_missing_files_are_rebuilt_from_the_database(kb, ingest):
    # given a version whose files are not on this node's disk
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    kb.refresh_from_db()
    import shutil

    shutil.rmtree(indexing.version_dir(kb.pk, kb.active_index.number))
    indexing.forget_cached_indexes()
    # when / then
    assert hybrid(kb, "cats", 1)[0].document_title == "a"
    assert indexing.version_dir(kb.pk, kb.active_index.number).exists()


def test_hnsw_graph_is_extended_not_rebuilt_when_documents_are_only_added(kb, ingest, settings, monkeypatch):
    # given a base whose dense index is HNSW (threshold lowered for the test)
    settings.KEFU_KB_HNSW_THRESHOLD = 1
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    kb.refresh_from_db()
    assert kb.active_index.dense_kind == "hnsw"

    # when a second document is added, no HNSW graph is built from scratch
    def no_full_build(*args, **kwargs):
        raise AssertionError("full HNSW build")

    monkeypatch.setattr("kb.retrieval.dense.build_dense", no_full_build)
    ingest(kb, "b.md", b"# Parking\n\nParking is free on Sundays.\n")
    ingest(kb, "c.md", b"# Hours\n\nThe shop opens at nine.\n")
    # then the new chunks are searchable by the dense retriever
    result = indexing.active_index(kb.pk)
    assert result.dense.kind == "hnsw" and result.dense.size == 6  # three chunks and their sections' headings
    assert hybrid(kb, "is parking free on sundays", 1)[0].document_title == "b"


def test_deleting_a_document_forces_a_full_build(kb, ingest, settings, monkeypatch):
    from kb.services import document_delete

    settings.KEFU_KB_HNSW_THRESHOLD = 1
    first = ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    ingest(kb, "b.md", b"# Parking\n\nParking is free on Sundays.\n")
    monkeypatch.setattr("kb.services.index_rebuild_enqueue", lambda _id: None)
    document_delete(document=first)
    calls = []
    import kb.retrieval.dense as dense

    original = dense.build_dense
    monkeypatch.setattr(dense, "build_dense", lambda *a, **k: calls.append(1) or original(*a, **k))
    indexing.index_build(knowledge_base_id=kb.pk)
    assert calls == [1] and indexing.active_index(kb.pk).dense.size == 2  # one chunk and its heading
