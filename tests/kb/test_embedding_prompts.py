"""Per-model prompts: a model whose own config_sentence_transformers.json names "query" and "passage" prompts (as
multilingual-e5 needs "query: " / "passage: ") gets them on every text by role — questions, FAQ phrasings and
queries as queries, document chunks as passages — at ingestion, at search and in a model switch."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kb.tiny_models import DIMENSION, tiny_model_dir, tiny_model_with_prompts

E5 = {"query": "query: ", "passage": "passage: "}


@pytest.fixture
def models(settings, tmp_path_factory, embedder):
    """"plain": a tiny model; "e5ish": the same weights with e5's prompts; "docs": with a "document" prompt."""
    from kb.embedding import forget_encoder

    root = tmp_path_factory.getbasetemp() / "tiny-models-prompts"
    root.mkdir(exist_ok=True)
    settings.KEFU_EMBEDDING_MODELS = {
        "plain": str(tiny_model_dir(root, seed=0)),
        "e5ish": str(tiny_model_with_prompts(root, E5)),
        "docs": str(tiny_model_with_prompts(root, {"query": "Q: ", "document": "D: "})),
    }
    yield
    for name in settings.KEFU_EMBEDDING_MODELS:
        forget_encoder(name)


def plain(texts: list[str]) -> np.ndarray:
    from kb.embedding import embed_texts

    return embed_texts(texts, model="plain")


def test_a_models_own_prompts_prefix_queries_and_passages(models):
    from kb.embedding import PASSAGE, embed_query, embed_texts

    texts = ["Do you ship abroad?", "Opening hours"]
    # when the prompted model embeds questions and passages
    queries = embed_texts(texts, model="e5ish")
    passages = embed_texts(texts, model="e5ish", role=PASSAGE)
    # then each is the plain model's vector of the prefixed text, and the two roles differ
    np.testing.assert_allclose(queries, plain([f"query: {t}" for t in texts]), atol=1e-5)
    np.testing.assert_allclose(passages, plain([f"passage: {t}" for t in texts]), atol=1e-5)
    np.testing.assert_allclose(embed_query(texts[0], model="e5ish"), queries[0], atol=1e-6)
    assert not np.allclose(queries, passages, atol=1e-3)
    # and a "document" prompt serves as the passage one; a model without prompts embeds texts as they are
    np.testing.assert_allclose(embed_texts(texts, model="docs", role=PASSAGE), plain([f"D: {t}" for t in texts]),
                               atol=1e-5)
    np.testing.assert_allclose(embed_texts(texts, model="plain", role=PASSAGE), plain(texts), atol=1e-6)
    with pytest.raises(ValueError, match="embedding role"):
        embed_texts(texts, model="e5ish", role="answer")


def test_a_base_on_a_prompted_model_stores_passages_and_questions_each_with_its_prompt(db, models, ingest):
    from kb.indexing import active_index, index_build
    from kb.models import Chunk
    from kb.retrieval.search import candidates
    from kb.services import faq_entry_create, knowledge_base_create

    # given a base on the prompted model with an FAQ entry and a document
    kb = knowledge_base_create(name="Prompted", chunk_size=64, chunk_overlap=8, embedding_model="e5ish")
    entry = faq_entry_create(knowledge_base=kb, question="Do you ship abroad?", alternatives=["International orders?"],
                             answer="We ship to every country in the European Union.", rebuild=False)
    ingest(kb, "returns.txt", b"Return any item within thirty days for a full refund.")
    index_build(knowledge_base_id=kb.pk)
    # then the chunk's vector is the passage's, the FAQ phrasings' are the questions', and so is a search's
    chunk = Chunk.objects.get(document__knowledge_base=kb)
    stored = np.frombuffer(bytes(chunk.embedding), dtype=np.float32)
    np.testing.assert_allclose(stored, plain([f"passage: {chunk.text}"])[0], atol=1e-5)
    entry.refresh_from_db()
    phrasings = np.frombuffer(bytes(entry.embeddings), dtype=np.float32).reshape(-1, DIMENSION)
    np.testing.assert_allclose(phrasings, plain(["query: Do you ship abroad?", "query: International orders?"]),
                               atol=1e-5)
    found = candidates(active_index(kb.pk), "Can I return a jacket?", 5)
    np.testing.assert_allclose(found.query_vector, plain(["query: Can I return a jacket?"])[0], atol=1e-5)


def test_a_switch_to_a_prompted_model_re_embeds_with_its_prompts(db, models, ingest):
    from kb.indexing import index_build
    from kb.models import Chunk
    from kb.services import faq_entry_create, knowledge_base_create

    # given a base on the plain model
    kb = knowledge_base_create(name="Switching", chunk_size=64, chunk_overlap=8, embedding_model="plain")
    entry = faq_entry_create(knowledge_base=kb, question="Do you ship abroad?",
                             answer="We ship to every country in the European Union.", rebuild=False)
    ingest(kb, "returns.txt", b"Return any item within thirty days for a full refund.")
    chunk = Chunk.objects.get(document__knowledge_base=kb)
    np.testing.assert_allclose(np.frombuffer(bytes(chunk.embedding), dtype=np.float32), plain([chunk.text])[0],
                               atol=1e-5)
    # when it switches to the prompted model, with progress counted over chunks and questions together
    seen = []
    index_build(knowledge_base_id=kb.pk, embedding_model="e5ish", on_progress=lambda done, total: seen.append(
        (done, total)))
    # then the stored vectors carry the new model's prompts, by role
    chunk.refresh_from_db()
    entry.refresh_from_db()
    np.testing.assert_allclose(np.frombuffer(bytes(chunk.embedding), dtype=np.float32),
                               plain([f"passage: {chunk.text}"])[0], atol=1e-5)
    np.testing.assert_allclose(np.frombuffer(bytes(entry.embeddings), dtype=np.float32),
                               plain(["query: Do you ship abroad?"])[0], atol=1e-5)
    assert seen[-1] == (2, 2) and all(total == 2 for _, total in seen)
