"""What a burst of cached answers writes: hit counts batched per distinct count, each entry's total exact."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from chat.models import CachedAnswer, Conversation, Message
from chat.pipeline.cache import answer_cache_lookup, answer_cache_store, hits_flush


@pytest.fixture
def cached_entries(db, settings):
    """Twelve cached answers of one base at index version 3; hit counts written only when flushed."""
    from kb.models import KnowledgeBase

    settings.KEFU_CHAT_CACHE_HITS_FLUSH_S = 3600
    kb = KnowledgeBase.objects.create(name="Burst", slug="burst")
    conversation = Conversation.objects.create(knowledge_base=kb)
    questions = [f"Question number {n} about the roof?" for n in range(12)]
    for n, text in enumerate(questions):
        asked = Message.objects.create(conversation=conversation, role="user", text=text)
        answer = Message.objects.create(conversation=conversation, role="assistant", reply_to=asked,
                                        text=f"Answer {n}.", outcome="answered")
        vector = np.zeros(384, dtype=np.float32)
        vector[n] = 1.0
        answer_cache_store(message=answer, question=text, query_vector=vector, kb_id=kb.pk, index_version=3)
    hits_flush()
    return kb, questions


def test_a_bursts_hit_counts_are_written_in_one_update_per_distinct_count(cached_entries,
                                                                          django_assert_num_queries):
    kb, questions = cached_entries
    # given a burst of 200 cache hits spread unevenly over the twelve entries
    asked = random.Random(5).choices(questions, weights=range(1, 13), k=200)
    for text in asked:
        assert answer_cache_lookup(kb_id=kb.pk, index_version=3, question=text).kind == "exact"
    expected = Counter(asked)
    # when the counts are flushed
    with django_assert_num_queries(len(set(expected.values()))):
        assert hits_flush() == len(expected)
    # then each entry holds exactly its own number of hits (counted independently of the cache)
    stored = dict(CachedAnswer.objects.values_list("normalized_question", "hits"))
    from chat.pipeline.cache import cache_form

    assert stored == {cache_form(text): expected.get(text, 0) for text in questions}
