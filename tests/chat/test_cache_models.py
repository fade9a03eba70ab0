"""The semantic answer cache keeps embedding spaces apart: an entry made under one model is never matched by a
question embedded with another, and an answer that finishes after its base switched model is not stored beside
the old model's entries."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kb.tiny_models import DIMENSION

QUESTION = "What are your opening hours?"


@pytest.fixture
def tiny(tiny_registered):
    """A tiny model registered as "tiny-a"."""
    return tiny_registered


@pytest.fixture
def base(db, tiny):
    """An indexed base on the default model with one FAQ entry."""
    from kb.indexing import index_build
    from kb.services import faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name="Cache models", chunk_size=64, chunk_overlap=8)
    faq_entry_create(knowledge_base=kb, question=QUESTION, answer="From eight to five.", rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    return kb


def answered(kb, text: str = QUESTION):
    """A finished generated answer to ``text`` on the base's active index version."""
    from chat.models import Conversation, Message

    conversation = Conversation.objects.create(knowledge_base=kb)
    question = Message.objects.create(conversation=conversation, role="user", text=text)
    return Message.objects.create(conversation=conversation, role="assistant", reply_to=question,
                                  text="From eight to five [1].", outcome="answered", citations=[{"n": 1}],
                                  index_version=kb.active_index_id)


def switch(kb, model: str):
    from kb.indexing import index_build

    index_build(knowledge_base_id=kb.pk, embedding_model=model)
    kb.refresh_from_db()
    assert kb.embedding_model == model


def test_an_entry_made_under_one_model_is_never_matched_by_a_vector_of_another(base):
    from chat.pipeline.cache import answer_cache_lookup
    from chat.services import answer_cache_add, embed_question

    # given an answer cached under the default model, found again by a paraphrase's vector
    answer_cache_add(message=answered(base))
    old_version = base.active_index_id
    paraphrase = "When are you open?"
    assert answer_cache_lookup(kb_id=base.pk, index_version=old_version, question=paraphrase, exact=False,
                               query_vector=embed_question(QUESTION, kb=base)) is not None
    # when the base switches to the tiny model
    switch(base, "tiny-a")
    vector = embed_question(QUESTION, kb=base)
    # then the very same question, embedded as the chat now does, matches nothing: neither semantically nor exactly
    assert vector.shape == (DIMENSION,) and base.active_index_id != old_version
    assert answer_cache_lookup(kb_id=base.pk, index_version=base.active_index_id, question=QUESTION,
                               query_vector=vector, exact=False) is None
    assert answer_cache_lookup(kb_id=base.pk, index_version=base.active_index_id, question=QUESTION,
                               query_vector=vector) is None
    # and an answer made on the new model is cached and found with the new model's vectors only
    answer_cache_add(message=answered(base))
    hit = answer_cache_lookup(kb_id=base.pk, index_version=base.active_index_id, question="x", exact=False,
                              query_vector=embed_question(QUESTION, kb=base))
    assert hit is not None and hit.similarity == pytest.approx(1.0, abs=1e-4)


def test_an_answer_finished_after_a_switch_is_not_stored_beside_the_old_models_entries(base):
    from chat.models import CachedAnswer
    from chat.pipeline.cache import answer_cache_lookup, cached_matrix
    from chat.services import answer_cache_add, embed_question

    # given one answer cached under the default model, and another still generating on the same version
    answer_cache_add(message=answered(base))
    late = answered(base, "Do you open on Saturdays?")
    old_version = base.active_index_id
    # when the base switches model before the late answer finishes
    switch(base, "tiny-a")
    answer_cache_add(message=late)
    # then the late answer is not cached: the old version holds the default model's vectors only
    assert CachedAnswer.objects.filter(knowledge_base=base).count() == 1
    ids, matrix = cached_matrix(base.pk, old_version)
    assert matrix.shape == (1, 384)
    # and a process still on the old version finds the old entry with an old-model vector, not a crash
    old_vector = np.frombuffer(bytes(CachedAnswer.objects.get().embedding), dtype=np.float32)
    assert answer_cache_lookup(kb_id=base.pk, index_version=old_version, question="x", exact=False,
                               query_vector=old_vector) is not None
    assert embed_question("Do you open on Saturdays?", kb=base).shape == (DIMENSION,)
