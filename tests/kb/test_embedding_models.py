"""Embedding models by name: the registry and its errors, the LRU of loaded encoders, index versions that
record their model, a base whose queries, FAQ vectors and intent examples all come from its own model,
and a switch of model through a new index version."""

from __future__ import annotations

import numpy as np
import pytest

from kefu.config import ConfigError, embedding_models
from tests.kb.tiny_models import DIMENSION, tiny_model_dir

FAQ = [("What are your opening hours?", "We are open from nine to five on weekdays."),
       ("Do you ship abroad?", "We ship to every country in the European Union.")]


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    return tiny_model_dir(root, seed=0), tiny_model_dir(root, seed=1)


@pytest.fixture
def tiny(settings, tiny_dirs, embedder):
    """Two tiny models registered as "tiny-a" and "tiny-b" (dropped from the LRU afterwards)."""
    from kb.embedding import forget_encoder

    settings.KEFU_EMBEDDING_MODELS = {"tiny-a": str(tiny_dirs[0]), "tiny-b": str(tiny_dirs[1])}
    yield "tiny-a", "tiny-b"
    forget_encoder("tiny-a")
    forget_encoder("tiny-b")


def faq_base(name: str, *, embedding_model: str = ""):
    from kb.services import faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name=name, chunk_size=64, chunk_overlap=8, embedding_model=embedding_model)
    for question, answer in FAQ:
        faq_entry_create(knowledge_base=kb, question=question, answer=answer, rebuild=False)
    return kb


# ---------------------------------------------------------------------------- names


def test_the_registry_setting_maps_names_to_model_directories(tiny_dirs):
    # given a setting naming two local sentence-transformers directories
    raw = f"tiny-a={tiny_dirs[0]}, tiny-b = {tiny_dirs[1]}"
    # when it is parsed
    models = embedding_models(raw)
    # then each name maps to its absolute directory, and an empty setting registers nothing
    assert models == {"tiny-a": str(tiny_dirs[0].resolve()), "tiny-b": str(tiny_dirs[1].resolve())}
    assert embedding_models("") == {}


@pytest.mark.parametrize("raw, message", [
    ("tiny", "not name=/local/dir"),
    ("=/tmp", "not name=/local/dir"),
    ("tuned:x={dir}", "not a plain name"),
    ("a={dir},a={dir}", "named twice"),
    ("a=/nowhere/at/all", "not a sentence-transformers directory"),
])
def test_a_malformed_registry_is_a_config_error(tiny_dirs, raw, message):
    with pytest.raises(ConfigError, match=message):
        embedding_models(raw.format(dir=tiny_dirs[0]))


@pytest.mark.parametrize("name, message", [
    ("no-such-model", "Unknown embedding model 'no-such-model'"),
    ("tuned:demo", "not of the form tuned:<kb-slug>:<12 hex digits>"),
    ("tuned:demo:0123456789ab", "missing from"),
    ("", "empty"),
])
def test_an_unknown_or_missing_model_name_is_a_config_error(settings, name, message):
    from kb.embedding import check_model_name

    with pytest.raises(ConfigError, match=message):
        check_model_name(name)


def test_a_base_cannot_be_created_on_an_unknown_model_and_nothing_is_stored(db):
    from kb.models import KnowledgeBase
    from kb.services import knowledge_base_create

    with pytest.raises(ConfigError, match="KEFU_EMBEDDING_MODELS"):
        knowledge_base_create(name="Nope", embedding_model="no-such-model")
    assert not KnowledgeBase.objects.exists()


def test_a_new_base_names_the_process_default_model(db, settings):
    from kb.services import knowledge_base_create

    assert knowledge_base_create(name="Plain").embedding_model == settings.KEFU_EMBEDDING_MODEL


# ---------------------------------------------------------------------------- the LRU


def test_least_recently_used_encoders_are_evicted_over_the_budget_but_never_the_default(settings, tiny):
    from kb.embedding import default_model_name, encoder_bytes, get_embedder, loaded_encoders

    # given a budget with room for the default model and one tiny model, not two
    default_bytes = encoder_bytes(get_embedder())
    tiny_bytes = encoder_bytes(get_embedder("tiny-a"))
    settings.KEFU_EMBEDDER_CACHE_MB = int((default_bytes + 1.5 * tiny_bytes) / 2**20) + 1
    assert default_bytes + 2 * tiny_bytes > settings.KEFU_EMBEDDER_CACHE_MB * 2**20
    # when the second tiny model is loaded
    get_embedder("tiny-b")
    # then the first one (least recently used) is gone, the default and the new one stay
    assert "tiny-a" not in loaded_encoders()
    assert {default_model_name(), "tiny-b"} <= set(loaded_encoders())
    # and with a budget smaller than the default alone, the default still stays
    settings.KEFU_EMBEDDER_CACHE_MB = 1
    get_embedder("tiny-a")
    assert default_model_name() in loaded_encoders() and "tiny-b" not in loaded_encoders()


def test_a_named_model_embeds_with_its_own_weights(tiny):
    from kb.embedding import embed_query, embed_texts

    default = embed_query("Do you ship abroad?")
    own = embed_texts(["Do you ship abroad?", "Opening hours"], model="tiny-a")
    other = embed_query("Do you ship abroad?", model="tiny-b")
    assert default.shape == (384,) and own.shape == (2, DIMENSION)
    np.testing.assert_allclose(np.linalg.norm(own, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(own[0], other, atol=1e-3)


# ---------------------------------------------------------------------------- bases and their index versions


def test_an_index_version_records_its_model_and_the_hash_of_its_files(kb, embedder):
    from kb.embedding import model_hash
    from kb.indexing import index_build
    from kb.services import faq_entry_create

    faq_entry_create(knowledge_base=kb, question=FAQ[0][0], answer=FAQ[0][1], rebuild=False)
    version = index_build(knowledge_base_id=kb.pk)
    assert version.embedding_model == kb.embedding_model == "all-minilm-l6-v2"
    assert len(version.embedding_hash) == 64 and version.embedding_hash == model_hash("all-minilm-l6-v2")


def test_a_base_on_another_model_is_searched_and_asked_with_that_model_only(db, tiny, ingest):
    from chat.pipeline import intent
    from chat.services import embed_question
    from kb.embedding import embed_query
    from kb.indexing import active_index, index_build
    from kb.retrieval.search import candidates
    from kb.search import hybrid

    # given a base on the tiny model with FAQ entries and a document
    kb = faq_base("Tiny", embedding_model="tiny-a")
    ingest(kb, "shipping.md", b"# Shipping\n\nParcels leave the warehouse within two days of the order.")
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    # when a question is embedded for the chat and searched
    vector = embed_question("When do parcels leave?", kb=kb)
    found = candidates(active_index(kb.pk), "When do parcels leave?", 10)
    hits = hybrid(kb, "When do parcels leave?", 3, query_vector=vector)
    # then every vector is the tiny model's: the question, the index's own query embedding, the FAQ rows
    assert vector.shape == (DIMENSION,)
    np.testing.assert_allclose(found.query_vector, embed_query("When do parcels leave?", model="tiny-a"), atol=1e-6)
    assert kb.active_index.embedding_model == "tiny-a" and found.dense
    assert all(len(bytes(e.embeddings)) == 4 * DIMENSION for e in kb.faq_entries.all())
    assert hits and all(h.similarity is None or -1.0 <= h.similarity <= 1.0 for h in hits)
    # and the intent classifier compares it with vectors of the same model (its shipped examples too)
    classifier = intent.classifier_for(kb.pk, kb.active_index_id)
    assert classifier.vectors.shape[1] == DIMENSION
    assert intent.intent_classify(text="When do parcels leave?", query_vector=vector, kb_id=kb.pk,
                                  index_version=kb.active_index_id).label in intent.LABELS


def test_a_model_switch_re_embeds_everything_into_a_new_version_and_swaps_with_it(db, tiny, ingest):
    from kb.indexing import active_index, index_build
    from kb.models import Chunk

    # given a base on the default model, indexed
    kb = faq_base("Switch")
    ingest(kb, "returns.md", b"# Returns\n\nReturn any item within thirty days for a full refund.")
    kb.refresh_from_db()
    old = kb.active_index
    assert len(bytes(Chunk.objects.get(document__knowledge_base=kb).embedding)) == 4 * 384
    # when the base is switched to the tiny model through an index build
    version = index_build(knowledge_base_id=kb.pk, embedding_model="tiny-a")
    kb.refresh_from_db()
    # then the new version is active and records the model; the stored vectors are the new model's
    assert kb.active_index_id == version.pk and version.number == old.number + 1
    assert kb.embedding_model == version.embedding_model == "tiny-a"
    assert len(bytes(Chunk.objects.get(document__knowledge_base=kb).embedding)) == 4 * DIMENSION
    assert all(len(bytes(e.embeddings)) == 4 * DIMENSION for e in kb.faq_entries.all())
    assert active_index(kb.pk).dense.index.d == DIMENSION


def test_a_failed_switch_leaves_the_old_model_and_version_serving(db, tiny, ingest, monkeypatch):
    from kb.indexing import index_build
    from kb.models import IndexVersion

    # given an indexed base on the default model
    kb = faq_base("Stays")
    ingest(kb, "a.md", b"# A\n\nSome text about returns.")
    kb.refresh_from_db()
    old = kb.active_index_id

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    # when the switch's build fails after the re-embedding
    monkeypatch.setattr("kb.retrieval.dense.build_dense", disk_full)
    with pytest.raises(OSError):
        index_build(knowledge_base_id=kb.pk, embedding_model="tiny-a")
    # then the old version, the old model and the old vectors still serve
    kb.refresh_from_db()
    assert kb.active_index_id == old and kb.embedding_model == "all-minilm-l6-v2"
    assert all(len(bytes(e.embeddings)) == 4 * 384 for e in kb.faq_entries.all())
    assert IndexVersion.objects.filter(knowledge_base=kb, status="failed").count() == 1


def test_chunks_embedded_before_a_switch_committed_are_not_stored_but_queued_again(
        db, tiny, embedder, monkeypatch, django_capture_on_commit_callbacks):
    from kb import ingestion
    from kb.ingestion import document_ingest
    from kb.models import Chunk, KnowledgeBase
    from kb.services import document_upload, knowledge_base_create

    # given a document whose chunks get embedded with the default model while a switch to tiny-a commits
    kb = knowledge_base_create(name="Race")
    document = document_upload(knowledge_base=kb, filename="a.md", data=b"# A\n\nReturns take thirty days.",
                               enqueue=False).document
    real = ingestion.batch_embed

    def embed_then_switch(prepared, model):
        vectors = real(prepared, model)
        KnowledgeBase.objects.filter(pk=kb.pk).update(embedding_model="tiny-a")
        return vectors

    monkeypatch.setattr(ingestion, "batch_embed", embed_then_switch)
    requeued = []
    monkeypatch.setattr("kb.services.ingest_enqueue", requeued.append)
    # when its ingestion reaches the store step
    with django_capture_on_commit_callbacks(execute=True):
        document_ingest(document_id=document.pk)
    # then nothing of the old model is stored, and the document is queued again
    document.refresh_from_db()
    assert document.status == "queued" and "embedding model changed" in document.stage
    assert not Chunk.objects.filter(document=document).exists() and requeued == [document.pk]
    # and its next ingestion embeds with the base's new model
    monkeypatch.setattr(ingestion, "batch_embed", real)
    assert document_ingest(document_id=document.pk).status == "ready"
    assert len(bytes(Chunk.objects.get(document=document).embedding)) == 4 * DIMENSION
