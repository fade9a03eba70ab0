"""Answerability on both search backends: a base whose active version lives in Milvus is fitted and scored
with the same features as a local one (BM25 ceiling and coverage, held-out phrasings) through kb.search."""

from __future__ import annotations

import pytest

from chat import answerability_fit as fitting
from chat.pipeline import answerability
from tests.chat.conftest import build_support_kb
from tests.chat.test_answerability import NEGATIVES
from tests.kb.conftest import milvus_collections_drop, milvus_uri, search_backend  # noqa: F401 - fixtures

OUT_OF_BASE = "My suitcase did not arrive at the carousel, where do I report it?"
IN_BASE = "What paperwork is needed before drilling a borehole for heating?"


@pytest.fixture
def backend_kb(search_backend, db, embedder):  # noqa: F811 - the fixture imported above
    """The support base, indexed on the backend of this run."""
    kb = build_support_kb()
    assert kb.active_index.backend == search_backend
    return kb


def ask(widget_key, text: str):
    from chat.models import Message
    from chat.services import message_answer

    started = message_answer(widget_key=widget_key, conversation=None, text=text)
    return Message.objects.get(pk=started.message_id)


def test_a_held_out_phrasing_does_not_find_itself_on_either_backend(backend_kb):
    # given the base's own question "What are your opening hours?" (alternative: "When are you open?")
    from kb.search import active_index, term_profile, term_profiles

    index = active_index(backend_kb.pk)
    question = next(q for q in fitting.positive_questions(backend_kb, index)
                    if q.text == "What are your opening hours?")
    assert question.excluded_rows.size == 1
    # when its hits are computed with its own row held out
    hits = fitting.heldout_hits(backend_kb, index, question)
    entry_hit = next(h for h in hits if h.faq_entry_id == question.entry_id)
    # then its entry is still found, through the alternative only
    assert entry_hit.similarity == pytest.approx(float(question.other_phrasings[0] @ question.vector), abs=1e-5)
    assert entry_hit.similarity < 0.99
    assert "bm25" in entry_hit.found_by or "dense" in entry_hit.found_by
    # and the ceiling and coverage ignore its words: "hour" occurs in no other row
    assert term_profile(index, ["hour"]).coverage == 1.0
    assert term_profile(index, ["hour"], exclude=question.excluded_rows).coverage == 0.0
    # and a batch of queries (the fit's) reads each as it would alone
    queries = [(["hour", "open"], question.excluded_rows), (["hour", "open"], []), (["permit"], [])]
    assert term_profiles(index, queries) == [term_profile(index, terms, exclude=rows) for terms, rows in queries]


def test_a_held_out_heading_does_not_find_its_own_heading_row_on_either_backend(backend_kb):
    # given a section heading of the base's document, asked as the fit asks it
    from kb.models import Chunk
    from kb.search import active_index, heading_rows

    index = active_index(backend_kb.pk)
    rows_of = heading_rows(index)
    headings = [q for q in fitting.positive_questions(backend_kb, index) if q.entry_id is None]
    assert headings and rows_of
    question = headings[0]
    # then the rows it holds out are the heading rows of the sections with that very heading, on either backend
    own_chunks = [chunk for chunk, rows in rows_of.items() if set(rows) & set(question.excluded_rows.tolist())]
    paths = Chunk.objects.filter(pk__in=own_chunks).values_list("heading_path", flat=True)
    assert own_chunks and all(path.split(" > ")[-1].strip() == question.text for path in paths)
    assert len(question.excluded_rows) == len(own_chunks)
    # and its hits are still computed without them
    assert fitting.heldout_hits(backend_kb, index, question)


def test_the_bm25_ceiling_bounds_the_top_bm25_score_on_either_backend(backend_kb):
    # given a question the base answers
    from kb.search import active_index, analyze, hybrid, term_profile

    query = "Do I need a permit to drill for a heat pump?"
    hits = hybrid(backend_kb, query, backend_kb.top_k)
    # when its BM25 ceiling is read from the version
    profile = term_profile(active_index(backend_kb.pk), analyze(query))
    # then the best BM25 hit scores positive, at most the ceiling (the sum of each term's best weight)
    top = max(h.found_by["bm25"].score for h in hits if "bm25" in h.found_by)
    assert 0 < top <= profile.ceiling + 1e-6
    assert 0 < profile.coverage <= 1
    # and words the base never uses add nothing
    unknown = term_profile(active_index(backend_kb.pk), analyze(query) + ["zebrafish"])
    assert unknown.ceiling == pytest.approx(profile.ceiling) and unknown.coverage < profile.coverage


def test_a_reply_stores_its_probability_and_out_of_base_is_refused_on_either_backend(backend_kb, fake_generator):
    from chat.models import WidgetKey

    key = WidgetKey.objects.create(knowledge_base=backend_kb, name="shop", allowed_origins=["https://shop.example.com"])
    # given the base's model, fitted on its own backend
    model = fitting.answerability_fit(knowledge_base_id=backend_kb.pk, negatives=NEGATIVES)
    assert model.index_version_id == backend_kb.active_index_id and model.heldout_refusal >= 0.95
    # when an in-base and a clearly out-of-base question are asked
    inside, outside = ask(key, IN_BASE), ask(key, OUT_OF_BASE)
    # then both replies carry a probability, and the out-of-base one is refused as the lower
    assert inside.outcome in ("pending", "answered") and 0 <= inside.answerability <= 1, inside.outcome
    assert outside.outcome == "refused" and outside.answerability is not None
    assert outside.answerability < inside.answerability


def test_the_fit_on_milvus_matches_the_fit_on_local_files(db, embedder, settings, milvus_uri, fake_generator):  # noqa: F811
    # given one base fitted on its local version, then moved to Milvus (kb_reindex --backend milvus) and refitted
    from chat.models import WidgetKey
    from kb.indexing import index_build
    from kb.search_backends import forget_backends

    settings.KEFU_MILVUS_URI, settings.KEFU_MILVUS_TIMEOUT_S = milvus_uri, 10.0
    milvus_collections_drop()
    try:
        kb = build_support_kb()
        key = WidgetKey.objects.create(knowledge_base=kb, name="shop", allowed_origins=["https://shop.example.com"])
        local = fitting.answerability_fit(knowledge_base_id=kb.pk, negatives=NEGATIVES)
        local_reply = ask(key, OUT_OF_BASE)
        index_build(knowledge_base_id=kb.pk, backend="milvus")
        kb.refresh_from_db()
        assert kb.active_index.backend == "milvus"
        milvus = fitting.answerability_fit(knowledge_base_id=kb.pk, negatives=NEGATIVES)
        milvus_reply = ask(key, OUT_OF_BASE)
    finally:
        milvus_collections_drop()
        forget_backends()
    print(f"local: threshold {local.threshold:.4f} refusal {local.heldout_refusal:.4f} loss "
          f"{local.heldout_in_base_loss:.4f} p(out) {local_reply.answerability:.4f}; milvus: threshold "
          f"{milvus.threshold:.4f} refusal {milvus.heldout_refusal:.4f} loss {milvus.heldout_in_base_loss:.4f} "
          f"p(out) {milvus_reply.answerability:.4f}")
    # then both learnt from the same questions, to the same threshold and held-out figures
    assert (milvus.positives, milvus.negatives) == (local.positives, local.negatives)
    # (the threshold is the probability of the one out-of-base question at the 98 % cut, so Milvus' own BM25
    # scores move it a little; which questions it refuses must not move)
    assert milvus.threshold == pytest.approx(local.threshold, abs=0.03)
    assert milvus.heldout_refusal == pytest.approx(local.heldout_refusal, abs=0.01)
    assert milvus.heldout_in_base_loss == pytest.approx(local.heldout_in_base_loss, abs=0.01)
    # and the clearly out-of-base question is refused on both, with a probability stored
    assert (local_reply.outcome, milvus_reply.outcome) == ("refused", "refused")
    assert milvus_reply.answerability < milvus.threshold and local_reply.answerability < local.threshold
    assert answerability.model_for(kb.pk, kb.active_index_id) == milvus
