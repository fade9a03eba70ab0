"""hybrid(): fused hits with sources and per-retriever ranks; FAQ hits carry answer and similarity."""

from __future__ import annotations

import pytest

from kb.indexing import index_build
from kb.search import hybrid, search
from kb.services import faq_entry_create

pytestmark = pytest.mark.usefixtures("search_backend")  # each test runs on local and on Milvus

DOCS = {
    "returns.md": b"# Returns\n\nYou can return any item within thirty days of delivery.\n",
    "shipping.md": b"# Shipping\n\nWe ship to every country in the EU. Delivery takes three days.\n",
    "warranty.md": b"# Warranty\n\nThe dishwasher model DW-9000 has a five year warranty on the motor.\n",
}


def build(kb, ingest):
    for name, data in DOCS.items():
        ingest(kb, name, data)


def test_hybrid_returns_the_relevant_chunk_first_with_its_source(kb, ingest):
    build(kb, ingest)
    hits = hybrid(kb, "how long do I have to send an item back?", 3)
    assert hits[0].document_title == "returns" and hits[0].heading_path == "Returns"
    assert "dense" in hits[0].found_by and hits[0].found_by["dense"].rank == 1
    assert hits[0].chunk_id is not None and hits[0].score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_rare_exact_term_is_found_by_bm25(kb, ingest):
    build(kb, ingest)
    result = search(kb, "DW-9000", 3)
    assert result.bm25[0].document_title == "warranty" and result.hybrid[0].document_title == "warranty"
    assert result.hybrid[0].found_by["bm25"].rank == 1


def test_faq_hit_carries_answer_and_similarity(kb, ingest):
    # given three documents and one FAQ entry with two phrasings
    build(kb, ingest)
    faq_entry_create(knowledge_base=kb, question="Can I pay with an invoice?", answer="Yes, for companies.",
                     alternatives=["Do you accept invoices?"], rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    # when the query is one of the phrasings, then the entry comes first with its answer
    hits = hybrid(kb, "do you accept invoices", 3)
    assert hits[0].is_faq and hits[0].faq_answer == "Yes, for companies."
    assert hits[0].similarity > 0.9
    # when the query is about something else, then the entry is still among all hits, far below
    unrelated = hybrid(kb, "dishwasher motor warranty", 10)
    faq = [h for h in unrelated if h.is_faq]
    assert unrelated[0].document_title == "warranty"
    assert len(faq) == 1 and faq[0].similarity < 0.5


def test_an_answer_held_as_faq_entry_and_as_document_is_corroborated_by_both_copies(kb, ingest):
    # given the returns document, and a FAQ entry whose answer is the same text
    from kb.retrieval.corroboration import CORROBORATION
    from kb.retrieval.search import candidates, fuse

    build(kb, ingest)
    faq_entry_create(knowledge_base=kb, question="What is your returns policy?",
                     answer="You can return any item within thirty days of delivery.", rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    query = "how long do I have to send an item back?"
    # when the customer asks about it
    hits = hybrid(kb, query, 3)
    # then both copies lead, each with its fused score plus a share of the other's
    from kb.indexing import active_index
    found = candidates(active_index(kb.pk), query, 50)
    fused = {f.key: f.score for f in fuse(found, dense_weight=kb.fusion_dense_weight, rrf_k=kb.fusion_rrf_k,
                                             limit=10, method=kb.fusion_method)}
    entry, chunk = sorted(hits[:2], key=lambda hit: not hit.is_faq)
    assert entry.is_faq and chunk.document_title == "returns"
    entry_fused, chunk_fused = fused[("faq", entry.faq_entry_id)], fused[("chunk", chunk.chunk_id)]
    assert entry.score == pytest.approx(entry_fused + CORROBORATION * chunk_fused)
    assert chunk.score == pytest.approx(chunk_fused + CORROBORATION * entry_fused)


def test_empty_knowledge_base_returns_no_hits(kb):
    assert hybrid(kb, "anything", 5) == []


def test_search_without_faq_keeps_ten_chunk_hits_when_faq_entries_crowd_the_top(kb, ingest):
    # given many FAQ entries that match the query better than any document
    from kb.indexing import index_build

    for i in range(6):
        ingest(kb, f"doc{i}.txt", f"Document {i} explains delivery option number {i} in detail.".encode())
    for i in range(8):
        faq_entry_create(knowledge_base=kb, question=f"Which delivery options exist ({i})?", answer="Several.",
                         rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    # when / then
    assert any(h.is_faq for h in search(kb, "which delivery options exist", 6).hybrid)
    chunks_only = search(kb, "which delivery options exist", 6, include_faq=False)
    assert len(chunks_only.hybrid) == 6 and not any(h.is_faq for h in chunks_only.hybrid + chunks_only.dense)



def test_a_faq_entry_whose_vectors_are_another_models_gets_no_similarity(kb, ingest):
    # given a FAQ entry, and a model switch that committed after the request picked the version to search
    from kb.embedding import embed_query
    from kb.indexing import active_index
    from kb.models import KnowledgeBase
    from kb.retrieval.search import hydrate

    faq_entry_create(knowledge_base=kb, question="How long is the warranty?", answer="Five years on the motor.")
    index_build(knowledge_base_id=kb.pk)
    version_model = active_index(kb.pk).embedding_model
    key = {("faq", kb.faq_entries.get().pk)}
    vector = embed_query("How long is the warranty?")
    before = hydrate(key, vector, vectors_model=version_model)
    KnowledgeBase.objects.filter(pk=kb.pk).update(embedding_model="tuned:other:0123")
    # when the version's hits are read
    after = hydrate(key, vector, vectors_model=version_model)
    # then the entry is still a hit, without a similarity across two embedding spaces
    assert before.popitem()[1]["similarity"] > 0.9
    assert after.popitem()[1]["similarity"] is None
