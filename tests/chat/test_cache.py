"""Answer cache: exact then semantic hits, per base and index version; down-rated answers leave it."""

from __future__ import annotations

import numpy as np
import pytest

from chat.models import CachedAnswer, Conversation, Message
from chat.pipeline.cache import (
    answer_cache_evict,
    answer_cache_lookup,
    answer_cache_store,
    cache_form,
    hits_flush,
)


def unit(*values):
    vector = np.zeros(384, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


@pytest.fixture
def answered(db):
    """An answered assistant message in a base with an active index version 7."""
    from kb.models import KnowledgeBase

    kb = KnowledgeBase.objects.create(name="Cache", slug="cache")
    conversation = Conversation.objects.create(knowledge_base=kb)
    question = Message.objects.create(conversation=conversation, role="user", text="Opening hours?")
    answer = Message.objects.create(conversation=conversation, role="assistant", reply_to=question,
                                    text="8 to 17 [1].", outcome="answered", citations=[{"n": 1}])
    return kb, answer


def test_cache_form_folds_case_width_punctuation_and_spaces():
    assert cache_form("  What are your OPENING hours？?! ") == cache_form("what are your opening hours")
    assert cache_form("Ｗｈａｔ’s  up") == "what s up"


def test_an_exact_hit_needs_only_the_normalised_text(answered):
    kb, answer = answered
    answer_cache_store(message=answer, question="What are your opening hours?", query_vector=unit(1, 0),
                       kb_id=kb.pk, index_version=7)
    hit = answer_cache_lookup(kb_id=kb.pk, index_version=7, question="what are your opening hours")
    assert hit is not None and hit.kind == "exact" and hit.answer == "8 to 17 [1]." and hit.citations == [{"n": 1}]
    hits_flush()
    assert CachedAnswer.objects.get().hits == 1


def test_hits_of_a_burst_are_written_together(answered, settings, django_assert_num_queries):
    kb, answer = answered
    answer_cache_store(message=answer, question="What are your opening hours?", query_vector=unit(1, 0),
                       kb_id=kb.pk, index_version=7)
    hits_flush()
    # given hit counts written at most once a minute
    settings.KEFU_CHAT_CACHE_HITS_FLUSH_S = 60
    # when the same question is answered from the cache 20 times
    with django_assert_num_queries(20):  # one SELECT each, no UPDATE
        for _ in range(20):
            assert answer_cache_lookup(kb_id=kb.pk, index_version=7, question="What are your opening hours?")
    # then the count is written once, whole
    with django_assert_num_queries(1):
        assert hits_flush() == 1
    assert CachedAnswer.objects.get().hits == 20


def test_a_semantic_hit_needs_the_similarity_setting(answered, settings):
    kb, answer = answered
    settings.KEFU_CHAT_CACHE_SIMILARITY = 0.95
    answer_cache_store(message=answer, question="When do you open?", query_vector=unit(1, 0),
                       kb_id=kb.pk, index_version=7)
    close, far = unit(1, 0.2), unit(1, 0.5)  # cosines 0.98 and 0.89
    hit = answer_cache_lookup(kb_id=kb.pk, index_version=7, question="what time do you open", query_vector=close)
    assert hit is not None and hit.kind == "semantic" and hit.similarity == pytest.approx(0.98, abs=0.01)
    assert answer_cache_lookup(kb_id=kb.pk, index_version=7, question="opening?", query_vector=far) is None


def test_another_index_version_never_sees_the_entry(answered):
    kb, answer = answered
    answer_cache_store(message=answer, question="When do you open?", query_vector=unit(1, 0),
                       kb_id=kb.pk, index_version=7)
    assert answer_cache_lookup(kb_id=kb.pk, index_version=8, question="When do you open?",
                               query_vector=unit(1, 0)) is None


def test_evicting_a_message_removes_its_entries_and_the_semantic_matrix_follows(answered):
    kb, answer = answered
    answer_cache_store(message=answer, question="When do you open?", query_vector=unit(1, 0),
                       kb_id=kb.pk, index_version=7)
    assert answer_cache_lookup(kb_id=kb.pk, index_version=7, question="x", query_vector=unit(1, 0)) is not None
    assert answer_cache_evict(message=answer) == 1
    assert answer_cache_lookup(kb_id=kb.pk, index_version=7, question="x", query_vector=unit(1, 0)) is None


def test_results_changed_under_the_same_version_drop_that_bases_answers_only(answered, monkeypatch):
    from kb.models import KnowledgeBase
    from kb.signals import retrieval_changed

    # given cached answers in two bases
    kb, answer = answered
    other = KnowledgeBase.objects.create(name="Other", slug="other")
    answer_cache_store(message=answer, question="When do you open?", query_vector=unit(1, 0),
                       kb_id=kb.pk, index_version=7)
    answer_cache_store(message=answer, question="When do you open?", query_vector=unit(1, 0),
                       kb_id=other.pk, index_version=3)
    monkeypatch.setattr("chat.tasks.answerability_fit", None)  # the refit's receiver is not under test here
    monkeypatch.setattr("kefu.background.enqueue", lambda *args, **kwargs: None)
    # when the first base's results change without a new version (fusion tuned, glossary corrected)
    retrieval_changed.send(sender=KnowledgeBase, knowledge_base_id=kb.pk, index_version_id=7)
    # then its answers are no longer served, and the other base's still are
    assert answer_cache_lookup(kb_id=kb.pk, index_version=7, question="When do you open?") is None
    assert answer_cache_lookup(kb_id=other.pk, index_version=3, question="When do you open?") is not None
