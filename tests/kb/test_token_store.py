"""Passages' word pieces stored with each index version (kb.retrieval.token_store): what is stored, what a new
version copies, and late interaction reading them instead of running the embedder."""

from __future__ import annotations

import numpy as np

from kb import embedding, indexing
from kb.retrieval import late_interaction, token_store
from kb.search import hybrid


def faq_add(kb, question: str, answer: str):
    from kb.services import faq_entry_create

    return faq_entry_create(knowledge_base=kb, question=question, answer=answer, alternatives=["Other words?"],
                            rebuild=False)


def test_a_version_stores_the_pieces_of_every_passage_a_hit_carries(kb, ingest):
    # given a base with a document and an FAQ entry (with an alternative phrasing)
    faq_add(kb, "Do you deliver on Saturdays?", "Deliveries run Monday to Saturday.")
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    # when its version is loaded
    index = indexing.active_index(kb.pk)
    chunk = kb.documents.get().chunks.get().text
    # then the store holds the chunk's and the entry's "question\nanswer" rows, and nothing else
    assert index.tokens is not None and len(index.tokens) == 2
    faq_text = "Do you deliver on Saturdays?\nDeliveries run Monday to Saturday."
    for text in (chunk, faq_text):
        expected = embedding.embed_tokens([text])[0]
        assert np.allclose(index.tokens.get(text).astype(np.float32), expected, atol=2e-3)
    assert index.tokens.get("Other words?\nDeliveries run Monday to Saturday.") is None


def test_a_new_version_copies_the_rows_it_has_and_computes_only_new_passages(kb, ingest, monkeypatch):
    # given a base with one document
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    computed = []
    real = token_store.computed_rows
    monkeypatch.setattr(token_store, "computed_rows",
                        lambda texts, **kw: computed.extend(texts) or real(texts, **kw))
    # when a second document is ingested
    ingest(kb, "b.md", b"# Parking\n\nParking is free on Sundays.\n")
    # then only its chunk was run through the embedder, and the new version holds both
    assert computed == [kb.documents.get(title="b").chunks.get().text]
    assert len(indexing.active_index(kb.pk).tokens) == 2


def test_late_interaction_reads_stored_pieces_without_embedding_the_passages(kb, ingest, monkeypatch):
    # given a base whose version stored its passages' pieces, and an empty per-process cache
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    ingest(kb, "b.md", b"# Parking\n\nParking is free on Sundays.\n")
    late_interaction._cache.clear()
    embedded = []
    real = embedding.embed_tokens
    monkeypatch.setattr(embedding, "embed_tokens",
                        lambda texts, **kw: embedded.append(kw.get("role")) or real(texts, **kw))
    # when the base is searched
    assert hybrid(kb, "is parking free on sundays", 2)[0].document_title == "b"
    # then only the question was broken into pieces
    assert embedded == [embedding.QUERY]


def test_without_a_store_the_pieces_are_computed_as_before(kb, ingest, settings):
    # given a base built with the store turned off
    settings.KEFU_KB_TOKEN_STORE = False
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    index = indexing.active_index(kb.pk)
    assert index.tokens is None
    assert not (indexing.version_dir(kb.pk, index.number) / token_store.VECTORS).exists()
    # when passages are read, they are computed, and reading a store falls back to computing what it lacks
    late_interaction._cache.clear()
    hit_text = kb.documents.get().chunks.get().text
    rows = late_interaction.passage_tokens([hit_text], model=None)[0]
    assert np.allclose(rows, embedding.embed_tokens([hit_text])[0], atol=2e-3)


def test_a_store_of_one_version_answers_for_texts_it_holds_only(tmp_path, embedder):
    # given a store written for two passages
    token_store.store_write(tmp_path, ["a roof", "a floor", "a roof"], model=None)
    store = token_store.store_load(tmp_path)
    # then each text's rows come back, a text it never saw has none, and the duplicate was kept once
    assert len(store) == 2
    assert store.get("a floor").shape == embedding.embed_tokens(["a floor"])[0].shape
    assert store.get("a wall") is None
    # and a folder without the files has no store
    assert token_store.store_load(tmp_path / "elsewhere") is None



def test_a_model_switch_stores_its_chunks_pieces_from_the_pass_that_embeds_them(kb, ingest, monkeypatch,
                                                                              tiny_registered):
    # given a base on the default model with a document and an FAQ entry
    faq_add(kb, "Do you deliver on Saturdays?", "Deliveries run Monday to Saturday.")
    ingest(kb, "a.md", b"# Pets\n\nCats are allowed in the lobby.\n")
    chunk = kb.documents.get().chunks.get().text
    computed = []
    real = token_store.computed_rows
    monkeypatch.setattr(token_store, "computed_rows",
                        lambda texts, **kw: computed.extend(texts) or real(texts, **kw))
    # when it switches to another model (a new version, everything re-embedded)
    indexing.index_build(knowledge_base_id=kb.pk, embedding_model=tiny_registered)
    kb.refresh_from_db()
    index = indexing.active_index(kb.pk)
    # then the chunk's pieces came with its vector (only the FAQ passage was computed apart), and both the
    # pieces and the vector are what the new model computes for the chunk on its own
    faq_text = "Do you deliver on Saturdays?\nDeliveries run Monday to Saturday."
    assert kb.embedding_model == tiny_registered and computed == [faq_text]
    for text in (chunk, faq_text):
        expected = embedding.embed_tokens([text], model=tiny_registered)[0]
        assert np.allclose(index.tokens.get(text).astype(np.float32), expected, atol=2e-3)
    row = index.rows.kinds.tolist().index(indexing.ROW_CHUNK)
    vector = embedding.embed_texts([chunk], model=tiny_registered, role=embedding.PASSAGE)[0]
    assert index.dense.kind == "flat" and np.allclose(index.dense.index.reconstruct(row), vector, atol=1e-4)
