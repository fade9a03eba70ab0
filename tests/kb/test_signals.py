"""kb's signals: sent after commit when the active version switches, or when fusion tuning or a glossary correction
changes the results.

The chat app's receivers (which queue an answerability fit) are disconnected here: these tests are about
what kb sends; tests/chat/test_answerability.py follows a signal to the fit.
"""

from __future__ import annotations

import pytest

from kb.signals import index_activated, retrieval_changed


@pytest.fixture
def sent():
    """What the two signals send during a test, with the chat app's receivers set aside."""
    from chat.apps import answerability_fit_enqueue, cached_answers_forget

    calls = []

    def on_activated(*, knowledge_base_id, index_version_id, **_):
        calls.append(("activated", knowledge_base_id, index_version_id))

    def on_changed(*, knowledge_base_id, index_version_id, **_):
        calls.append(("changed", knowledge_base_id, index_version_id))

    index_activated.disconnect(dispatch_uid="chat-answerability-fit")
    retrieval_changed.disconnect(dispatch_uid="chat-answerability-refit")
    retrieval_changed.disconnect(dispatch_uid="chat-cache-forget")
    index_activated.connect(on_activated, weak=False)
    retrieval_changed.connect(on_changed, weak=False)
    yield calls
    index_activated.disconnect(on_activated)
    retrieval_changed.disconnect(on_changed)
    index_activated.connect(answerability_fit_enqueue, dispatch_uid="chat-answerability-fit")
    retrieval_changed.connect(answerability_fit_enqueue, dispatch_uid="chat-answerability-refit")
    retrieval_changed.connect(cached_answers_forget, dispatch_uid="chat-cache-forget")


def test_an_activated_index_version_is_announced_after_commit(kb, ingest, sent, django_capture_on_commit_callbacks):
    from kb.indexing import index_build

    ingest(kb, "a.txt", b"Parking in the garage is free on Sundays.")
    with django_capture_on_commit_callbacks(execute=False) as pending:
        version = index_build(knowledge_base_id=kb.pk)
        assert sent == []  # nothing before the commit
    for callback in pending:
        callback()
    assert sent == [("activated", kb.pk, version.pk)]


def test_fusion_tuning_that_changes_the_settings_is_announced(kb, ingest, sent, django_capture_on_commit_callbacks):
    # given a base with twelve FAQ pairs and settings the grid does not hold
    from kb.evaluation import fusion_weight_tune
    from kb.indexing import index_build
    from kb.services import faq_entry_create

    for topic in ["cats", "dogs", "parking", "invoices", "refunds", "delivery", "warranty", "opening hours",
                  "gift cards", "accessibility", "wifi", "lockers"]:
        document = ingest(kb, f"{topic}.txt", f"Our policy on {topic}: {topic} are handled at the front desk.".encode())
        faq_entry_create(knowledge_base=kb, question=f"What is the rule for {topic}?", answer="See desk.",
                         source_document=document, rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    kb.fusion_method, kb.fusion_dense_weight = "rrf", 0.33
    # when tuned, and tuned again (now nothing changes)
    with django_capture_on_commit_callbacks(execute=True):
        fusion_weight_tune(knowledge_base=kb, grid=(0.5, 0.9), k_grid=(5,))
    kb.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        fusion_weight_tune(knowledge_base=kb, grid=(0.5, 0.9), k_grid=(5,))
    # then only the change was announced, for the active version
    assert sent == [("changed", kb.pk, kb.active_index_id)]


def test_a_glossary_correction_is_announced_after_commit(kb, ingest, sent, django_capture_on_commit_callbacks):
    from kb.indexing import index_build
    from kb.services import glossary_edit_undo, glossary_term_explain

    # given an indexed base
    ingest(kb, "a.txt", b"A bygglov (building permit) is issued by the municipality.")
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    sent.clear()
    # when staff explain a term, then undo it
    with django_capture_on_commit_callbacks(execute=True):
        glossary_term_explain(knowledge_base=kb, term="stambyte", explanation="main pipe replacement")
        assert sent == []  # not before the commit
        glossary_edit_undo(knowledge_base=kb, term="stambyte")
    # then each change was announced for the active version once it committed
    assert sent == [("changed", kb.pk, kb.active_index_id)] * 2
