"""Answer-type agreement: a near-tied hit whose question asks for the customer's kind of answer leads."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kb.indexing import index_build
from kb.retrieval import late_interaction
from kb.retrieval import question_type as qt
from kb.retrieval.question_type import hit_question, prefer_matching_type, question_type
from kb.search import hybrid, search
from kb.services import faq_entry_create


@dataclass(frozen=True)
class FakeHit:
    """Only what the rule reads of a hit (kb.retrieval.search.Hit has these fields too)."""

    score: float
    faq_question: str = ""
    heading_path: str = ""
    document_title: str = ""


@pytest.mark.parametrize(("text", "expected"), [
    ("How much will an extension set me back per square metre?", "cost"),
    ("What does an attefallshus cost?", "cost"),
    ("How many weeks will we be without a shower?", "duration"),
    ("How long does a bathroom renovation take?", "duration"),
    ("What hours are builders allowed to work?", "time"),
    ("Who is responsible for the staff register?", "who"),
    ("Where do I apply for a permit?", "where"),
    ("Why does F-skatt protect the client?", "why"),
    ("How does a hidden defect differ from a misrepresentation?", "difference"),
    ("What is a personalliggare?", "definition"),
    ("What do BAS-P and BAS-U stand for?", "definition"),
    ("换屋顶要多少钱？", "cost"),
    ("装修浴室需要多久？", "duration"),
    ("什么是 Debian？", "definition"),
    ("Can I negotiate the price?", "cost"),
    ("We're selling next year. When should we paint the facade?", "time"),
    ("Is VAT reverse charged when I only buy materials?", None),
    ("Can I sue a builder who is not registered?", None),
    ("What is the maximum size of an attefall house?", None),
    ("Can I use an attefallshus as a permanent residence?", None),
    ("怎么查看 Debian 版本？", None),
])
def test_question_type_names_the_kind_of_answer_asked_for(text, expected):
    assert question_type(text) == expected


def test_a_hit_asks_its_faq_question_else_a_heading_or_title_written_as_a_question():
    assert hit_question(FakeHit(1.0, faq_question="How long does it take?", heading_path="Costs")) == \
        "How long does it take?"
    assert hit_question(FakeHit(1.0, heading_path="Roofs > How long does a roof last?")) == "How long does a roof last?"
    assert hit_question(FakeHit(1.0, heading_path="Roofs", document_title="What does a roof cost?")) == \
        "What does a roof cost?"
    assert hit_question(FakeHit(1.0, heading_path="Roofs", document_title="Roof guide")) == ""


def test_a_near_tied_hit_of_the_asked_type_moves_to_the_front():
    # given the best hit asks how often, the second (close behind) how long
    often = FakeHit(1.0, faq_question="How often should I replace the bathroom?")
    long = FakeHit(0.9, faq_question="How long does a bathroom renovation take?")
    other = FakeHit(0.8, faq_question="What tiles should I choose?")
    # when the customer asks for a duration, then the duration hit leads and the rest keep their order
    assert prefer_matching_type("How many weeks will we be without a shower?", [often, long, other]) == \
        [long, often, other]


def test_the_fused_order_stays_when_the_best_hit_already_matches_or_nothing_matches_closely():
    cost = FakeHit(1.0, faq_question="What does a roof cost?")
    duration = FakeHit(0.95, faq_question="How long does a roof take?")
    far = FakeHit(0.5, faq_question="How long does a roof take?")
    deep = [FakeHit(1.0, faq_question="Why do roofs leak?"), FakeHit(0.99), FakeHit(0.98),
            FakeHit(0.97, faq_question="How long does a roof take?")]
    assert prefer_matching_type("How much is a new roof?", [cost, duration]) == [cost, duration]
    assert prefer_matching_type("How long will the roof take?", [cost, far]) == [cost, far]  # below RATIO
    assert prefer_matching_type("How long will the roof take?", deep) == deep  # beyond DEPTH
    assert prefer_matching_type("Can I replace my roof in winter?", [cost, duration]) == [cost, duration]  # no type
    assert prefer_matching_type("How long?", []) == []


@pytest.mark.usefixtures("search_backend")  # local and Milvus
def test_hybrid_and_search_apply_the_rule_to_fused_hits(kb, monkeypatch):
    # given two FAQ entries: the "why" one shares every word of the question, the "who" one fewer
    faq_entry_create(knowledge_base=kb, question="Why do roof tiles crack?",
                     answer="Frost and old age crack roof tiles.", rebuild=False)
    faq_entry_create(knowledge_base=kb, question="Who replaces broken roof tiles?",
                     answer="Our roofers replace broken tiles within a week.", rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    question = "Who knows why roof tiles crack?"
    monkeypatch.setattr(late_interaction, "WEIGHT", 0.0)  # the fused order alone (re-reading has its own tests)
    # when the rule is off (no hit is ever close enough), then the fused order puts the "why" entry first
    monkeypatch.setattr(qt, "RATIO", 2.0)
    assert hybrid(kb, question, 3)[0].faq_question == "Why do roof tiles crack?"
    # when any hit of the asked type in the top DEPTH counts as close, then the "who" entry leads
    monkeypatch.setattr(qt, "RATIO", 0.0)
    assert hybrid(kb, question, 3)[0].faq_question == "Who replaces broken roof tiles?"
    assert search(kb, question, 3).hybrid[0].faq_question == "Who replaces broken roof tiles?"
    assert search(kb, question, 3).dense[0].faq_question == "Why do roof tiles crack?"  # single lists untouched
