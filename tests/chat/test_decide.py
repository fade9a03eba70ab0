"""Decide: direct FAQ answers only when clearly right; refusal below the floor; generation otherwise."""

import pytest

from chat.pipeline import decide
from chat.pipeline.intent import Intent
from kb.retrieval.fusion import Ranked
from kb.search import Hit


def chunk(cosine, n=1):
    return Hit(chunk_id=n, document_id=1, text=f"passage {n}", score=0.03, document_title="Manual", page=2,
               heading_path="Roof", found_by={"dense": Ranked(n, cosine)})


def faq(similarity, answer="We open at 8.", n=1):
    return Hit(chunk_id=None, document_id=None, text="q\na", score=0.03, document_title="FAQ", page=None,
               heading_path="", faq_entry_id=n, faq_question=f"q{n}", faq_answer=answer, similarity=similarity)


def run(label, hits, *, threshold=0.85, floor=0.35, extractive=False, explicit=False):
    return decide.answer_decide(intent=Intent(label, 0.9, explicit), hits=hits, direct_threshold=threshold,
                                relevance_floor=floor, extractive=extractive)


def test_a_faq_hit_over_the_threshold_is_answered_directly():
    decision = run("faq", [chunk(0.5), faq(0.91)])
    assert decision.action == decide.DIRECT and decision.faq_hit.faq_entry_id == 1


def test_a_faq_hit_under_the_threshold_goes_to_generation_over_relevant_passages():
    decision = run("knowledge", [faq(0.84), chunk(0.5, 2), chunk(0.2, 3)])
    assert decision.action == decide.GENERATE
    assert [p.n for p in decision.passages] == [1, 2]
    assert [p.relevance for p in decision.passages] == [0.84, 0.5]


def test_two_near_tied_faq_entries_with_different_answers_are_not_answered_directly():
    decision = run("faq", [faq(0.90, "Yes.", 1), faq(0.89, "No.", 2)])
    assert decision.action == decide.GENERATE


def test_nothing_above_the_relevance_floor_means_i_dont_know_without_generation():
    decision = run("knowledge", [chunk(0.2), faq(0.3)])
    assert decision.action == decide.REFUSE and decision.reason == "no_relevant_passage"
    assert run("knowledge", []).action == decide.REFUSE


def test_out_of_scope_is_refused_unless_the_base_answers_it_directly():
    assert run("out_of_scope", [chunk(0.6)]).reason == "out_of_scope"
    assert run("out_of_scope", [faq(0.95)]).action == decide.DIRECT


@pytest.mark.parametrize("label, action", [("handoff", decide.HANDOFF), ("chitchat", decide.CHITCHAT)])
def test_handoff_and_chitchat_need_no_retrieval(label, action):
    assert not decide.needs_retrieval(Intent(label, 0.8))
    assert run(label, [faq(0.99)]).action == action


def test_extractive_mode_extracts_instead_of_generating():
    assert run("knowledge", [chunk(0.6)], extractive=True).action == decide.EXTRACT
