"""Corroboration: an answer found both as a FAQ entry and as the chunk holding its text ranks higher."""

from kb.retrieval.corroboration import CORROBORATION, corroborated
from kb.retrieval.search import Hit

PERMIT = "A building permit is needed for extensions. The municipality decides within ten weeks."
CONSENT = "Neighbours are asked when you build closer than 4.5 metres to the boundary."


def faq_hit(question: str, answer: str, score: float, entry_id: int) -> Hit:
    return Hit(chunk_id=None, document_id=None, text=f"{question}\n{answer}", score=score, document_title="FAQ",
               page=None, heading_path="", faq_entry_id=entry_id, faq_question=question, faq_answer=answer)


def chunk_hit(text: str, score: float, chunk_id: int) -> Hit:
    return Hit(chunk_id=chunk_id, document_id=chunk_id, text=text, score=score, document_title="Permits",
               page=None, heading_path="")


def test_an_answer_found_as_entry_and_as_chunk_overtakes_a_sibling_found_once():
    # given a sibling entry ranked first, and the answer found twice below it (its entry and its chunk)
    hits = [faq_hit("Is neighbour consent required?", CONSENT, 1.0, 1),
            faq_hit("Do I need a building permit for an extension?", PERMIT, 0.9, 2),
            chunk_hit("Extensions\n" + PERMIT, 0.8, 10)]
    # when the list is corroborated
    ranked = corroborated(hits)
    # then the answer found twice leads, its score raised by a share of its copy's
    assert [hit.faq_entry_id or hit.chunk_id for hit in ranked] == [2, 1, 10]
    assert ranked[0].score == 0.9 + CORROBORATION * 0.8


def test_a_list_without_copies_keeps_its_order_and_scores():
    hits = [faq_hit("Is neighbour consent required?", CONSENT, 1.0, 1), chunk_hit(PERMIT, 0.9, 10)]
    assert corroborated(hits) == hits


def test_the_faq_question_is_not_part_of_the_copy_and_punctuation_does_not_matter():
    # given a chunk that holds the answer reworded in case and punctuation only, and a second entry whose
    # question (not answer) the chunk happens to contain
    hits = [chunk_hit(PERMIT.upper().replace(".", ";"), 0.7, 10), faq_hit("Extensions", CONSENT, 0.6, 1),
            faq_hit("Do I need a permit?", PERMIT, 0.5, 2)]
    ranked = corroborated(hits)
    # then only the entry with the same answer is the chunk's copy
    by_id = {hit.faq_entry_id or hit.chunk_id: hit.score for hit in ranked}
    assert by_id == {10: 0.7 + CORROBORATION * 0.5, 2: 0.5 + CORROBORATION * 0.7, 1: 0.6}
