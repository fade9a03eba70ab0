"""Passage sentences' vectors are remembered per process: the extract reuses what answerability embedded."""

from __future__ import annotations

import numpy as np
import pytest

from chat.pipeline import sentence_vectors as cache


@pytest.fixture
def embedded(monkeypatch, embedder):
    """The texts each real encoder pass received."""
    from kb import embedding

    cache.forget_sentence_vectors()
    passes = []
    real = embedding.embed_texts

    def counting(texts, **kwargs):
        passes.append(list(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(embedding, "embed_texts", counting)
    yield passes
    cache.forget_sentence_vectors()


def test_a_sentence_is_embedded_once_and_gives_the_encoders_vector(embedded):
    from kb.embedding import embed_query

    first = cache.sentence_vectors(["Drilling takes two days.", "Roofs last 50 years."])
    again = cache.sentence_vectors(["Roofs last 50 years.", "We inspect every roof."])
    assert embedded == [["Drilling takes two days.", "Roofs last 50 years."], ["We inspect every roof."]]
    assert np.allclose(again[0], first[1])
    assert float(again[1] @ embed_query("We inspect every roof.")) == pytest.approx(1.0, abs=1e-3)


def test_the_oldest_sentences_leave_past_the_bound(embedded, monkeypatch):
    monkeypatch.setattr(cache, "MAX_ENTRIES", 2)
    cache.sentence_vectors(["one sentence here.", "two sentences here."])
    cache.sentence_vectors(["three sentences here."])
    cache.sentence_vectors(["one sentence here."])
    assert embedded[-1] == ["one sentence here."]  # evicted, so embedded again
