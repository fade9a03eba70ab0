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


@pytest.mark.parametrize(("label", "question", "action"), [("handoff", "I want a person", decide.HANDOFF),
                                                           ("chitchat", "Hello there!", decide.CHITCHAT)])
def test_handoff_and_small_talk_need_no_retrieval(label, question, action):
    assert not decide.needs_retrieval(Intent(label, 0.8), question)
    assert decide.answer_decide(intent=Intent(label, 0.8), hits=[faq(0.99)], direct_threshold=0.85,
                                relevance_floor=0.35, extractive=False, question=question).action == action


def test_extractive_mode_extracts_instead_of_generating():
    assert run("knowledge", [chunk(0.6)], extractive=True).action == decide.EXTRACT


def test_small_talk_gets_kefus_own_reply_on_an_extractive_base_and_a_generation_otherwise():
    assert decide.answer_decide(intent=Intent("chitchat", 0.9), hits=[], direct_threshold=0.85,
                                relevance_floor=0.35, extractive=True, question="Hello!") == decide.Decision(
        decide.SMALLTALK, "greeting")
    assert decide.answer_decide(intent=Intent("chitchat", 0.9), hits=[], direct_threshold=0.85,
                                relevance_floor=0.35, extractive=False, question="Thanks!").action == decide.CHITCHAT


def test_other_chit_chat_is_treated_as_a_question():
    # given the intent stage calls it chit-chat, but it is no greeting, thanks or goodbye
    decision = decide.answer_decide(intent=Intent("chitchat", 0.6), hits=[chunk(0.2)], direct_threshold=0.85,
                                    relevance_floor=0.35, extractive=True, question="What's your favourite colour?")
    # then nothing relevant was found for it, and it is refused rather than chatted about
    assert decision == decide.Decision(decide.REFUSE, "no_relevant_passage")


@pytest.mark.parametrize("extractive", [True, False])
def test_a_task_request_is_refused_as_out_of_scope_in_every_mode(extractive):
    decision = decide.answer_decide(intent=Intent("chitchat", 0.9), hits=[], direct_threshold=0.85,
                                    relevance_floor=0.35, extractive=extractive,
                                    question="Translate 'good morning' into Japanese")
    assert decision == decide.Decision(decide.REFUSE, "task_request")
    assert not decide.needs_retrieval(Intent("chitchat", 0.9), "Translate 'good morning' into Japanese")


def test_a_clear_best_faq_under_the_direct_threshold_is_suggested_in_extractive_mode():
    hits = [faq(0.78, "Five years.", 1), chunk(0.7, 2), faq(0.66, "Ten weeks.", 3)]
    decision = run("knowledge", hits, extractive=True)
    assert decision.action == decide.SUGGEST and decision.faq_hit.faq_entry_id == 1
    # generative bases generate over the passages instead
    assert run("knowledge", hits).action == decide.GENERATE


@pytest.mark.parametrize("hits", [
    [faq(0.78, "Five years.", 1), faq(0.75, "Ten weeks.", 2)],  # a near tie with another answer
    [faq(0.55, "Five years.", 1)],  # not close enough
    [chunk(0.8, 5), faq(0.7, "Five years.", 1)],  # another source ranks first
])
def test_no_suggestion_without_a_clear_best_match(hits):
    assert run("knowledge", hits, extractive=True).action == decide.EXTRACT


def test_a_guessed_hand_off_is_answered_when_the_base_answers_it():
    # given the intent stage read a question as a hand-off, without the words of one and not sure of it
    guessed = Intent("handoff", 0.72, explicit=False)
    assert decide.needs_retrieval(guessed, "Where can I get help with Debian?")
    # when the base has a relevant passage, it answers; when it has none, the customer gets a person
    assert run("knowledge", [chunk(0.6)]).action == decide.GENERATE
    answered = decide.answer_decide(intent=guessed, hits=[chunk(0.6)], direct_threshold=0.85, relevance_floor=0.35,
                                    extractive=True, question="Where can I get help with Debian?")
    assert answered.action == decide.EXTRACT
    nothing = decide.answer_decide(intent=guessed, hits=[chunk(0.1)], direct_threshold=0.85, relevance_floor=0.35,
                                   extractive=True, question="Where can I get help with Debian?")
    assert nothing == decide.Decision(decide.HANDOFF, "intent")


def test_a_confident_hand_off_needs_no_search():
    sure = Intent("handoff", 0.9, explicit=False)
    assert not decide.needs_retrieval(sure, "Can someone call me back?")
    assert decide.answer_decide(intent=sure, hits=[], direct_threshold=0.85, relevance_floor=0.35, extractive=True,
                                question="Can someone call me back?") == decide.Decision(decide.HANDOFF, "intent")


@pytest.mark.parametrize(("text", "statement"), [
    ("I'm thinking about replacing the roof", True), ("We want to renovate our bathroom.", True),
    ("My roof leaks", True), ("我想换屋顶", True),
    ("I'm replacing the roof. Do I need a permit?", False), ("Can I replace the roof myself?", False),
    ("roof replacement cost", False), ("我想知道换屋顶要多少钱", False), ("Is my roof covered", False),
])
def test_first_person_statements_without_a_question_are_told_apart(text, statement):
    assert decide.is_statement(text) is statement


def test_a_statement_is_never_answered_directly_but_its_close_faq_is_offered_with_its_question():
    # given a FAQ entry very close to what the customer said they are planning
    hits = [faq(0.9, "Not recommended: hire a roofer.", 1), faq(0.6, "Ten weeks.", 2)]
    said = "I'm thinking about replacing the roof myself"
    # then it is not a direct answer; an extractive base offers it with its question, a generative one generates
    extract = decide.answer_decide(intent=Intent("faq", 0.9), hits=hits, direct_threshold=0.85, relevance_floor=0.35,
                                   extractive=True, question=said)
    assert extract.action == decide.SUGGEST and extract.faq_hit.faq_entry_id == 1
    assert decide.answer_decide(intent=Intent("faq", 0.9), hits=hits, direct_threshold=0.85, relevance_floor=0.35,
                                extractive=False, question=said).action == decide.GENERATE
    # and the same words asked as a question are answered directly
    assert decide.answer_decide(intent=Intent("faq", 0.9), hits=hits, direct_threshold=0.85, relevance_floor=0.35,
                                extractive=True, question="Can I replace the roof myself?").action == decide.DIRECT


def words_hit(cosine, bm25_rank, n):
    """A chunk found by both retrievers: a dense cosine and a BM25 rank."""
    return Hit(chunk_id=n, document_id=1, text=f"passage {n}", score=0.03, document_title="手册", page=None,
               heading_path="升级", found_by={"dense": Ranked(n, cosine), "bm25": Ranked(bm25_rank, 7.5)})


def answerable_run(hits):
    from chat.pipeline.answerability import Score

    return decide.answer_decide(intent=Intent("knowledge", 0.9), hits=hits, direct_threshold=0.85,
                                relevance_floor=0.35, extractive=False, answerability=Score(0.9, 0.5))


def test_the_top_bm25_hit_is_relevant_even_when_the_embedder_does_not_know_the_language():
    # given a Chinese question, judged answerable, whose best passage the English-only embedder scores low
    hits = [words_hit(0.12, 1, 1), words_hit(0.10, 2, 2), words_hit(0.5, 3, 3)]
    # when
    decision = answerable_run(hits)
    # then BM25's first hit stays a passage, its second (as low a cosine) does not, a close one does
    assert decision.action == decide.GENERATE
    assert [p.chunk_id for p in decision.passages] == [1, 3]


def test_without_any_word_or_vector_evidence_nothing_is_relevant():
    decision = answerable_run([words_hit(0.12, 2, 1), chunk(0.2, 2)])
    assert decision.action == decide.REFUSE and decision.reason == "no_relevant_passage"


def test_without_an_answerability_model_a_top_bm25_hit_is_not_enough():
    # given no fitted model: some word of almost any question matches some passage
    decision = run("knowledge", [words_hit(0.12, 1, 1)])
    assert decision.action == decide.REFUSE and decision.reason == "no_relevant_passage"


@pytest.mark.parametrize("question", ["Can you help me?", "I need help", "I have a question", "能帮我一下吗"])
def test_an_invitation_to_ask_beats_a_guessed_hand_off(question):
    # given an intent stage sure (but not told) that the customer wants a person
    sure = Intent("handoff", 0.95, explicit=False)
    # when the message only offers to ask something
    decision = decide.answer_decide(intent=sure, hits=[], direct_threshold=0.85, relevance_floor=0.35,
                                    extractive=True, question=question)
    # then Kefu invites the question instead of calling staff
    assert decision == decide.Decision(decide.SMALLTALK, "help")


def test_an_explicit_request_for_a_person_is_handed_off_even_with_small_talk_in_it():
    told = Intent("handoff", 1.0, explicit=True)
    assert decide.answer_decide(intent=told, hits=[], direct_threshold=0.85, relevance_floor=0.35, extractive=True,
                                question="Hi, can you help me?") == decide.Decision(decide.HANDOFF, "requested")


def test_related_questions_are_the_close_faq_questions_best_first_each_once():
    # given FAQ hits of several similarities, one question twice (an entry and its copy), and a chunk
    hits = [chunk(0.6), faq(0.50, n=2), faq(0.62, n=3), faq(0.35, n=4), faq(0.55, n=5), faq(0.47, n=6)]
    hits[4] = Hit(**{**hits[4].__dict__, "faq_question": "Q3"})  # the same question as entry 3, other case
    # when the questions to offer with an "I don't know" are picked
    related = decide.related_questions(hits)
    # then those reaching the floor come best first, a repeated question once, at most MAX_RELATED
    assert related == ("q3", "q2", "q6")
    assert decide.related_questions(hits, limit=1) == ("q3",)


def test_no_faq_question_close_enough_offers_nothing():
    assert decide.related_questions([chunk(0.9), faq(0.30)]) == ()


def test_a_question_the_base_surely_lacks_is_offered_nothing():
    # given a close-looking FAQ question, when the answerability says the question is from elsewhere
    hits = [faq(0.6, n=2)]
    # then nothing is offered; at a probability of a near miss, or unscored, it is
    assert decide.related_questions(hits, probability=0.05) == ()
    assert decide.related_questions(hits, probability=0.3) == ("q2",)
    assert decide.related_questions(hits) == ("q2",)
