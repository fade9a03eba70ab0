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
    from kb.search import as_searched

    # given a base whose FAQ explains a term, indexed
    kb = permits_base(tiny_registered)
    # when a question with the term, misspelled elsewhere, is read as the search reads it
    searched = as_searched(kb.pk, kb.active_index_id, "how long does a bygglov take to get isued?")
    # then
    assert searched == "how long does a bygglov (building permit) take to get issued?"
    # and a base with no index yet reads it as typed
    assert as_searched(kb.pk, None, "bygglov?") == "bygglov?"
    glossary.forget_glossaries()


def test_staff_corrections_replace_add_and_silence_terms():
    from kb.retrieval.glossary import GlossEdit, corrected

    # given a mined glossary with a wrong explanation and a term staff do not want explained
    mined = glossary_of(["An easement (servitut) on the plot.", "A bygglov (building permit) is needed.",
                         "Safe Water (Vatten) rules."])
    # when staff explain servitut their way (in another case), add a term of theirs and silence two mined ones
    fixed = corrected(mined, [GlossEdit("Servitut", "right of way"), GlossEdit("stambyte", "main pipe replacement"),
                              GlossEdit("vatten"), GlossEdit("bygglov")])
    # then questions are explained their way
    assert fixed.explain("can a servitut be removed?") == "can a servitut (right of way) be removed?"
    assert fixed.explain("what does a stambyte cost?") == "what does a stambyte (main pipe replacement) cost?"
    assert fixed.explain("do I need a bygglov for vatten?") == "do I need a bygglov for vatten?"
    # and the mined glossary itself is unchanged
    assert mined.explain("bygglov?") == "bygglov (building permit)?"


@pytest.mark.django_db
def test_a_correction_is_searched_with_from_the_next_question_and_undone_as_easily(tiny_registered):
    from kb.models import GlossaryEdit
    from kb.search import as_searched, glossary_terms
    from kb.services import (
        GlossaryEditRejected,
        glossary_edit_undo,
        glossary_term_explain,
        glossary_term_ignore,
    )

    # given an indexed base whose FAQ explains bygglov, its glossary already read by this process
    kb = permits_base(tiny_registered)
    assert as_searched(kb.pk, kb.active_index_id, "bygglov?") == "bygglov (building permit)?"
    try:
        # when staff add a term of their own and silence the mined one
        glossary_term_explain(knowledge_base=kb, term=" stambyte ", explanation="main   pipe replacement")
        glossary_term_ignore(knowledge_base=kb, term="Bygglov")
        # then the very next question is searched with the corrected glossary (no new index version)
        assert as_searched(kb.pk, kb.active_index_id, "a stambyte and a bygglov?") == \
            "a stambyte (main pipe replacement) and a bygglov?"
        page = glossary_terms(kb.pk, kb.active_index_id)
        assert [(t.term, t.explanation, t.by_staff) for t in page.terms] == [
            ("stambyte", "main pipe replacement", True)]
        assert page.ignored == ["bygglov"] and page.total == 1
        # when a correction is undone, the mined explanation is back
        glossary_edit_undo(knowledge_base=kb, term="bygglov")
        assert as_searched(kb.pk, kb.active_index_id, "bygglov?") == "bygglov (building permit)?"
        # and a term the glossary does not hold cannot be silenced, nor an absent correction undone: nothing stored
        with pytest.raises(GlossaryEditRejected, match="not in this base's glossary"):
            glossary_term_ignore(knowledge_base=kb, term="attefall")
        with pytest.raises(GlossaryEditRejected, match="no correction"):
            glossary_edit_undo(knowledge_base=kb, term="attefall")
        assert list(GlossaryEdit.objects.values_list("term", flat=True)) == ["stambyte"]
    finally:
        glossary.forget_glossaries()


def permits_base(model: str):
    """An indexed base whose one FAQ entry explains "bygglov (building permit)", with no glossary kept yet."""
    from kb.indexing import index_build
    from kb.services import faq_entry_create, knowledge_base_create

    glossary.forget_glossaries()
    kb = knowledge_base_create(name="Permits", embedding_model=model)
    faq_entry_create(knowledge_base=kb, question="What is a bygglov?",
                     answer="A bygglov (building permit) is issued by the municipality.", rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    kb.refresh_from_db()
    return kb


def test_a_chinese_term_staff_add_is_explained_wherever_it_stands():
    from kb.retrieval.glossary import GlossEdit, corrected

    # given a mined glossary and a Chinese term a staff member explains with the base's own word
    fixed = corrected(glossary_of(["An easement (servitut) on the plot."]), [GlossEdit("开机", "引导")])
    # then a Chinese question holding it is searched with the base's word too (Chinese has no spaces between words)
    assert fixed.explain("Debian 开机的时候都经历了哪些过程？") == "Debian 开机 (引导)的时候都经历了哪些过程？"
    # and word terms still match whole words only
    assert fixed.explain("servituts 开机") == "servituts 开机 (引导)"


@pytest.mark.django_db
def test_a_chinese_question_is_searched_with_the_staffs_chinese_term(tiny_registered):
    from kb.search import as_searched
    from kb.services import glossary_term_explain

    # given an indexed base and a staff member's Chinese term
    kb = permits_base(tiny_registered)
    glossary_term_explain(knowledge_base=kb, term="开机", explanation="引导")
    # when a question without a Latin letter is read as the search reads it
    # then the term is explained
    assert as_searched(kb.pk, kb.active_index_id, "开机要多久？") == "开机 (引导)要多久？"


def test_a_name_of_a_few_words_before_its_explanation_is_one_term():
    # given texts that explain Swedish names of two words
    found = glossary_of(["Plumbers certified under Säker Vatten (Safe Water) rules.",
                         "Book the tekniskt samråd (technical consultation) early.",
                         "Zaragoza AB bygglov (building permit) help."]).glosses
    # then the whole name is the term, and a word written otherwise is not part of it
    assert found["Säker Vatten"].explanation == "Safe Water" and "Vatten" not in found
    assert found["tekniskt samråd"].explanation == "technical consultation"
    assert found["bygglov"].explanation == "building permit"
    # and a question names it in any case
    assert glossary_of(["Säker Vatten (Safe Water) rules."]).explain("is säker vatten needed?") == \
        "is säker vatten (Safe Water) needed?"
