"""The base's own glossary: terms its texts explain in brackets, explained the same way in a question
(kb.retrieval.glossary, kb.search.glossed)."""

from __future__ import annotations

import pytest

from kb.retrieval import glossary
from kb.retrieval.glossary import Gloss, glossary_of

TEXTS = [
    "What is an easement (servitut)? An easement is a right to use another property.",
    "A bygglov (building permit) is issued by the municipality. Apply for your bygglov early.",
    "Every circuit needs a residual current device (RCD).",
    "The ROT (renovation tax deduction) covers labour.",
    "Drawings of all 4 facades (1:100) and a site plan (scale 1:400).",
    "Simple spaces (storage, carport) need no permit. Roofing is dangerous (fall risk).",
    "We inspect the building (bygglov) twice.",  # a second, rarer explanation of the same term
    "Ask the building permit (bygglov) office.",
]


def test_terms_the_base_explains_in_brackets_are_mined_both_ways():
    # when the glossary is built from the base's texts
    found = glossary_of(TEXTS).glosses
    # then "words (term)" and "term (words)" are both read, and an acronym whose letters start its words
    assert found["servitut"] == Gloss("servitut", "easement")
    assert found["RCD"] == Gloss("RCD", "residual current device")
    # and the explanation the base gives most often wins
    assert found["bygglov"].explanation == "building permit"
    # and a term is one term whatever its case ("Bygglov" opening a sentence)
    assert [term for term in glossary_of([*TEXTS, "Bygglov (building permit) first."]).glosses
            if term.lower() == "bygglov"] == ["bygglov"]


def test_brackets_that_explain_nothing_are_not_glosses():
    found = glossary_of(TEXTS).glosses
    # numbers and lists in brackets, an English word with a bracketed comment, an acronym whose letters are not
    # the initials of its bracket ("ROT" / renovation tax deduction)
    assert not {"facades", "plan", "spaces", "dangerous", "ROT"} & set(found)
    assert all(not any(ch.isdigit() for ch in gloss.explanation) for gloss in found.values())


def test_a_phrase_cut_by_an_abbreviation_or_a_term_of_the_base_explains_nothing():
    # given a checklist whose brackets say where to check each item, not what it is
    texts = ["Check: org. number (allabolag), F-tax (Skatteverket), insurance.",
             "Ask the Swedish Tax Agency (Skatteverket) for an F-tax certificate."]
    # when the glossary is built
    found = glossary_of(texts).glosses
    # then neither bracket of the checklist is a gloss, and the real explanation is
    assert "allabolag" not in found
    assert found["Skatteverket"] == Gloss("Skatteverket", "Swedish Tax Agency")


def test_a_question_is_read_with_the_bases_explanation_after_each_term_once():
    explain = glossary_of(TEXTS).explain
    # when a customer types the term alone, in any case
    assert explain("can servitut be removed?") == "can servitut (easement) be removed?"
    assert explain("Is an rcd required in the bathroom?") == "Is an rcd (residual current device) required in the bathroom?"
    # then each term is explained once, and not where the question already says it
    assert explain("bygglov or no bygglov?") == "bygglov (building permit) or no bygglov?"
    assert explain("a bygglov, the building permit") == "a bygglov, the building permit"
    # and a word that only contains a term is left alone
    assert explain("servituts and rcds") == "servituts and rcds"


def test_an_acronym_that_is_also_an_english_word_is_explained_only_as_written():
    # given "ROT" is a term of the base and "rot" an English word (decay)
    explain = glossary_of(["A residual current device (RCD). Use the ROT (Renovation Overhaul Tax) form."]).explain
    # then only the capitals are the term
    assert explain("the tiler found rot under the floor") == "the tiler found rot under the floor"
    assert explain("can I get ROT?") == "can I get ROT (Renovation Overhaul Tax)?"


def test_a_base_without_bracketed_terms_changes_no_question():
    assert glossary_of(["Open from nine to five."]).explain("when are you open?") == "when are you open?"


@pytest.mark.django_db
def test_the_search_reads_a_question_spelled_then_glossed_with_the_active_versions_glossary(tiny_registered):
    from kb.indexing import index_build
    from kb.search import as_searched
    from kb.services import faq_entry_create, knowledge_base_create

    # given a base whose FAQ explains a term, indexed
    glossary.forget_glossaries()
    kb = knowledge_base_create(name="Permits", embedding_model=tiny_registered)
    faq_entry_create(knowledge_base=kb, question="What is a bygglov?",
                     answer="A bygglov (building permit) is issued by the municipality.", rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    # when a question with the term, misspelled elsewhere, is read as the search reads it
    searched = as_searched(kb.pk, kb.active_index_id, "how long does a bygglov take to get isued?")
    # then
    assert searched == "how long does a bygglov (building permit) take to get issued?"
    # and a base with no index yet reads it as typed
    assert as_searched(kb.pk, None, "bygglov?") == "bygglov?"
    glossary.forget_glossaries()
