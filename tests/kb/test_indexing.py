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
