"""The search backends: versions in Milvus are atomic, follow edits and deletions, and record their model;
both backends answer the same questions alike (Milvus through Milvus Lite)."""

from __future__ import annotations

import pytest

from kb import indexing
from kb.models import Chunk, IndexVersion
from kb.search import hybrid, index_status, search
from kb.search_backends import MILVUS, backend_named
from kb.search_backends.milvus import collection_name
from kb.services import document_delete, faq_entry_create, faq_entry_delete

DOCS = {
    "returns.md": b"# Returns\n\nYou can return any item within thirty days of delivery.\n",
    "shipping.md": b"# Shipping\n\nWe ship to every country in the EU. Delivery takes three days.\n",
    "warranty.md": b"# Warranty\n\nThe dishwasher model DW-9000 has a five year warranty on the motor.\n",
    "退货.md": "# 退货政策\n\n收到商品后七天内可以无理由退货，运费由买家承担。\n".encode(),
}


def build(kb, ingest):
    return {name: ingest(kb, name, data) for name, data in DOCS.items()}


def milvus_rows(kb_id: int, version_id: int) -> int:
    return len(milvus_refs(kb_id, version_id))


def milvus_refs(kb_id: int, version_id: int) -> list[tuple[int, int]]:
    """(kind, ref) of each row of one version, in every Kefu collection."""
    backend = backend_named(MILVUS)
    found = []
    for name in backend.collections():
        rows = backend.call("status", "query", name, filter=f"kb == {kb_id} and version == {version_id}",
                            output_fields=["kind", "ref"], limit=16384)
        found.extend((row["kind"], row["ref"]) for row in rows)
    return found


milvus_only = pytest.mark.parametrize("search_backend", [MILVUS], indirect=True)


@pytest.mark.parametrize("search_backend", ["local", "milvus"], indirect=True)
def test_both_backends_rank_the_same_documents_first(search_backend, kb, ingest):
    # given the same base indexed on either backend
    build(kb, ingest)
    version = IndexVersion.objects.get(pk=kb.__class__.objects.get(pk=kb.pk).active_index_id)
    # when English, Chinese and exact-term questions are asked
    top = {q: hybrid(kb, q, 3)[0].document_title
           for q in ("how long do I have to send an item back?", "几天内可以退货", "DW-9000 motor")}
    # then the version lives on that backend and each question finds its document
    assert version.backend == search_backend
    assert top == {"how long do I have to send an item back?": "returns", "几天内可以退货": "退货",
                   "DW-9000 motor": "warranty"}


@milvus_only
def test_a_milvus_version_writes_no_index_files_and_records_its_model(search_backend, kb, ingest, kb_data_dir):
    build(kb, ingest)
    kb.refresh_from_db()
    version = kb.active_index
    # then its rows are in the collection of its model's dimension, none on this disk
    from kb.embedding import embedding_dimension

    assert version.backend == MILVUS and version.dense_kind == "milvus-hnsw"
    assert version.embedding_model == kb.embedding_model
    assert collection_name(embedding_dimension(version.embedding_model)) in backend_named(MILVUS).collections()
    chunk_rows = {ref for kind, ref in milvus_refs(kb.pk, version.pk) if kind == indexing.ROW_CHUNK}
    assert chunk_rows == set(Chunk.objects.filter(document__knowledge_base=kb).values_list("id", flat=True))
    assert not indexing.version_dir(kb.pk, version.number).exists()
    status = index_status(kb)
    assert (status.backend, status.version, status.embedding_model) == (MILVUS, version.number, kb.embedding_model)


@milvus_only
def test_a_failed_milvus_build_is_invisible_and_cleaned_up_by_the_next(search_backend, kb, ingest, monkeypatch):
    # given a base serving version 1 from Milvus
    build(kb, ingest)
    kb.refresh_from_db()
    first = kb.active_index
    faq_entry_create(knowledge_base=kb, question="Do you sell gift cards?", answer="Yes, from 10 to 500 euros.",
                     rebuild=False)

    # when the next build dies after its rows reached Milvus, before the database switched
    def die(name):
        if name == "milvus_rows_written":
            raise RuntimeError("killed mid-build")

    monkeypatch.setattr("kb.search_backends.milvus.pause_point", die)
    with pytest.raises(RuntimeError):
        indexing.index_build(knowledge_base_id=kb.pk, gate=False)
    failed = IndexVersion.objects.filter(knowledge_base=kb).order_by("-number").first()
    # then its rows exist but no search sees them: version 1 still answers, without the new entry
    assert failed.status == IndexVersion.Status.FAILED and milvus_rows(kb.pk, failed.pk) > 0
    kb.refresh_from_db()
    assert kb.active_index_id == first.pk
    assert not any(hit.is_faq for hit in hybrid(kb, "gift cards", 5))

    # when the build is retried
    monkeypatch.undo()
    retried = indexing.index_build(knowledge_base_id=kb.pk, gate=False)
    # then the new version serves the entry and the failed build's rows are gone
    assert retried.status == IndexVersion.Status.READY
    assert hybrid(kb, "gift cards", 5)[0].faq_question == "Do you sell gift cards?"
    assert milvus_rows(kb.pk, failed.pk) == 0 and milvus_rows(kb.pk, first.pk) > 0  # the predecessor is kept


@milvus_only
def test_a_process_that_finds_the_collection_unloaded_loads_it_before_searching(search_backend, kb, ingest):
    # given a base on Milvus, and its collection released — as a restarted Milvus, or a new process opening a
    # Milvus Lite file, leaves it
    from kb.indexing import forget_cached_indexes

    build(kb, ingest)
    backend = backend_named(MILVUS)
    name = backend.collections()[0]
    backend.call("schema", "release_collection", name)
    backend.close()  # this process forgets what it knew, like a new one
    forget_cached_indexes()
    # when a customer asks
    hits = hybrid(kb, "how long do I have to send an item back?", 3)
    # then the search loads the collection and answers
    assert hits and hits[0].document_title == "returns"


@milvus_only
def test_deletions_propagate_and_old_versions_are_deleted(search_backend, kb, ingest):
    # given a base with documents and an FAQ entry
    documents = build(kb, ingest)
    entry = faq_entry_create(knowledge_base=kb, question="Do you sell gift cards?", answer="Yes.", rebuild=False)
    indexing.index_build(knowledge_base_id=kb.pk, gate=False)
    assert hybrid(kb, "gift cards", 5)[0].is_faq
    # when a document and the entry are deleted, each followed by its rebuild
    document_delete(document=documents["warranty.md"])
    indexing.index_build(knowledge_base_id=kb.pk, gate=False)
    faq_entry_delete(entry=entry)
    indexing.index_build(knowledge_base_id=kb.pk, gate=False)
    # then neither is found any more
    titles = {hit.document_title for hit in search(kb, "DW-9000 dishwasher warranty motor gift cards", 10).hybrid}
    assert titles and "warranty" not in titles and not any(hit.is_faq for hit in hybrid(kb, "gift cards", 10))
    # and only the newest two versions keep rows in Milvus
    versions = list(IndexVersion.objects.filter(knowledge_base=kb).order_by("-number"))
    assert len(versions) >= 4
    assert [milvus_rows(kb.pk, v.pk) > 0 for v in versions] == [True, True] + [False] * (len(versions) - 2)


def test_a_base_moves_to_milvus_and_keeps_serving_its_local_version_until_the_switch(kb, ingest, settings,
                                                                                       milvus_uri):
    from kb.search_backends import forget_backends

    # given a base indexed locally
    settings.KEFU_MILVUS_URI = milvus_uri
    build(kb, ingest)
    kb.refresh_from_db()
    assert kb.active_index.backend == "local"
    # when KEFU_SEARCH_BACKEND switches to milvus, before any rebuild
    settings.KEFU_SEARCH_BACKEND = MILVUS
    # then the local version still answers
    assert hybrid(kb, "DW-9000 motor", 1)[0].document_title == "warranty"
    # when the base is rebuilt (kb_reindex, or any upload)
    version = indexing.index_build(knowledge_base_id=kb.pk, gate=False)
    # then Milvus serves it
    kb.refresh_from_db()
    assert kb.active_index_id == version.pk and version.backend == MILVUS
    assert hybrid(kb, "DW-9000 motor", 1)[0].document_title == "warranty"
    forget_backends()


def test_a_base_fusion_maps_to_a_milvus_ranker_only_where_it_is_the_same():
    from pymilvus import RRFRanker, WeightedRanker

    from kb.search_backends.milvus import server_ranker

    equal = server_ranker(method="rrf", dense_weight=0.5, rrf_k=20)
    assert isinstance(equal, RRFRanker) and equal.dict()["params"]["k"] == 20
    assert server_ranker(method="rrf", dense_weight=0.7, rrf_k=20) is None  # RRFRanker has no per-list weights
    weighted = server_ranker(method="minmax", dense_weight=0.7, rrf_k=5)
    assert isinstance(weighted, WeightedRanker)
    assert weighted.dict()["params"]["weights"] == pytest.approx([0.3, 0.7])  # BM25 request first, then dense


@milvus_only
def test_deleting_a_base_deletes_its_rows_in_milvus(search_backend, kb, ingest, django_capture_on_commit_callbacks):
    # given a base indexed in Milvus
    build(kb, ingest)
    versions = list(IndexVersion.objects.filter(knowledge_base=kb).values_list("pk", flat=True))
    kb_id = kb.pk
    assert any(milvus_rows(kb_id, v) for v in versions)
    # when the base is deleted
    with django_capture_on_commit_callbacks(execute=True):
        kb.delete()
    # then none of its rows is left
    assert not any(milvus_rows(kb_id, v) for v in versions)


def backend_metric(name: str, backend: str, operation: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"backend": backend, "operation": operation}) or 0.0


@pytest.mark.parametrize("search_backend", ["local", "milvus"], indirect=True)
def test_each_search_is_timed_per_backend(search_backend, kb, ingest):
    build(kb, ingest)
    before = backend_metric("kefu_search_backend_seconds_count", search_backend, "search")
    hybrid(kb, "DW-9000 motor", 3)
    calls = {"local": 1, "milvus": 2}[search_backend]  # Milvus: the BM25 and the dense search
    assert backend_metric("kefu_search_backend_seconds_count", search_backend, "search") == before + calls
