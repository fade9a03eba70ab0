"""message_answer end to end over a real indexed base (only the generator is faked), and the other writes."""

from __future__ import annotations

import re

import pytest

from chat import services
from chat.models import CachedAnswer, ChatProfile, Conversation, Feedback, Message
from inference.stream import StreamEvent


def answer_of(started) -> Message:
    return Message.objects.select_related("reply_to", "conversation").get(pk=started.message_id)


def ask(widget_key, text, conversation=None):
    return answer_of(services.message_answer(widget_key=widget_key, conversation=conversation, text=text))


def done_event(text, **extra):
    data = {"text": text, "prompt_tokens": 100, "completion_tokens": 9, "queue_ms": 2.0, "ttft_ms": 30.0,
            "tokens_per_s": 20.0, "finish_reason": "stop"}
    return StreamEvent("5-0", "done", {**data, **extra})


def test_a_faq_question_is_answered_directly_and_stored_with_its_outcome(widget_key, fake_generator):
    # when
    answer = ask(widget_key, "What are your opening hours?")
    # then
    assert answer.outcome == "direct" and answer.text == "We are open Monday to Friday, 8:00 to 17:00."
    assert answer.citations[0]["faq_entry_id"] is not None
    assert answer.reply_to.text == "What are your opening hours?" and answer.reply_to.outcome == "direct"
    assert answer.reply_to.intent in {"faq", "knowledge"} and 0 < answer.reply_to.intent_confidence <= 1
    assert answer.timings["total_ms"] > 0 and answer.completed_at is not None
    assert fake_generator.requests == []
    assert answer.conversation.knowledge_base_id == widget_key.knowledge_base_id


def test_a_misspelled_question_is_searched_with_the_bases_own_words_and_answered_directly(widget_key,
                                                                                      fake_generator):
    # given "opning" is one edit from the base's "opening"
    from kb.retrieval import spelling

    spelling.forget_spellers()
    # when
    answer = ask(widget_key, "What are your opning hours?")
    # then
    assert answer.outcome == "direct" and answer.text == "We are open Monday to Friday, 8:00 to 17:00."
    assert answer.reply_to.text == "What are your opning hours?"  # stored as the customer typed it
    assert fake_generator.requests == []


def test_the_same_question_again_is_served_from_the_cache(widget_key, fake_generator):
    first = ask(widget_key, "What are your opening hours?")
    again = ask(widget_key, "what are your opening hours")
    assert again.outcome == "cached" and again.reason == "exact" and again.text == first.text
    assert again.served_from_id == first.pk and again.citations == first.citations


def test_a_knowledge_question_is_generated_over_cited_passages_and_finalised(widget_key, fake_generator):
    # when
    answer = ask(widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    # then it waits on the generator, which received numbered passages with sources
    assert answer.outcome == "pending" and answer.inference_job_id
    prompt = fake_generator.requests[0]["messages"][-1]["content"]
    assert "[1] (" in prompt and "drilling permit" in prompt
    assert answer.passages and answer.passages[0]["n"] == 1
    # when the job's done event arrives
    finished = services.message_finalize(message=answer, event=done_event("You need a drilling permit [1]."))
    # then the answer, citations, tokens and timings are stored, and the question shares the outcome
    assert finished.outcome == "answered" and finished.text == "You need a drilling permit [1]."
    assert finished.citations[0]["n"] == 1 and finished.citations[0]["document_title"]
    assert finished.completion_tokens == 9 and finished.timings["ttft_ms"] == 30.0
    assert finished.timings["total_ms"] >= finished.timings["pipeline_ms"]
    assert Message.objects.get(pk=answer.reply_to_id).outcome == "answered"
    # and a cited answer enters the cache; finalising twice changes nothing
    assert CachedAnswer.objects.filter(source_message=finished).count() == 1
    assert services.message_finalize(message=finished, event=done_event("other")).text == finished.text


def test_an_error_event_fails_the_message_with_a_polite_text(widget_key, fake_generator):
    answer = ask(widget_key, "How long does drilling for a heat pump take?")
    failed = services.message_finalize(message=answer, event=StreamEvent("9-0", "error",
                                                                         {"code": "worker_lost", "message": "x"}))
    assert failed.outcome == "failed" and failed.error_code == "worker_lost" and "try again" in failed.text
    assert not CachedAnswer.objects.exists()


def test_an_out_of_scope_question_gets_i_dont_know_without_generation(widget_key, fake_generator):
    answer = ask(widget_key, "Who won the football match yesterday?")
    assert answer.outcome == "refused" and answer.reason in {"out_of_scope", "no_relevant_passage",
                                                             "no_relevant_sentence"}
    assert ("don't know" in answer.text or "not something I can help with" in answer.text) and "team" in answer.text
    assert fake_generator.requests == []


def test_passages_without_a_sentence_about_the_question_get_i_dont_know_not_a_generation(
        widget_key, fake_generator, monkeypatch):
    # given retrieval finds passages, but none of their sentences is about the question
    from chat.pipeline import extractive

    monkeypatch.setattr(extractive, "has_support", lambda **kwargs: False)
    # when a knowledge question is asked in generative mode
    answer = ask(widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    # then the customer is told we don't know, and the generator is never called
    assert answer.outcome == "refused" and answer.reason == "no_relevant_sentence"
    assert fake_generator.requests == []


def test_an_explicit_request_for_a_human_hands_the_conversation_off(widget_key, fake_generator):
    answer = ask(widget_key, "转人工")
    assert answer.outcome == "handed_off" and answer.reply_to.intent == "handoff"
    assert "人工客服" in answer.text
    assert Conversation.objects.get(pk=answer.conversation_id).status == "handed_off"


def test_a_question_with_a_sensitive_word_is_refused_politely(widget_key, fake_generator):
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, sensitive_words="competitor x\n骗子")
    answer = ask(widget_key, "Is Competitor X cheaper than you?")
    assert answer.outcome == "refused" and answer.reason == "sensitive_word" and "sorry" in answer.text.lower()
    assert ask(widget_key, "你们是骗子吗").reason == "sensitive_word"


def test_generated_output_is_masked_when_finalised(widget_key, fake_generator):
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, sensitive_words="Competitor X")
    answer = ask(widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    finished = services.message_finalize(message=answer, event=done_event("Unlike competitor x, yes [1]."))
    assert finished.text == "Unlike ********** *, yes [1]."


def test_a_follow_up_uses_history_for_retrieval_and_skips_the_cache(widget_key, fake_generator):
    first = ask(widget_key, "What are your opening hours?")
    follow = ask(widget_key, "And is that the same on Saturday?", conversation=first.conversation)
    # the new ask kept, the history fills in the pronoun with its topic
    assert follow.reply_to.standalone_query == "And is opening hours the same on Saturday?"
    # not served from the cache: it goes to the generator, which sees the earlier turns before the new one
    assert follow.outcome == "pending" and len(fake_generator.requests) == 1
    roles = [m["role"] for m in fake_generator.requests[0]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_a_follow_ups_head_is_re_read_with_its_own_words_beside_the_rewrite(widget_key, fake_generator, monkeypatch):
    from kb.retrieval import search

    # given a conversation, and retrieval watched
    first = ask(widget_key, "What are your opening hours?")
    asked = []
    real = search.reread
    monkeypatch.setattr(search, "reread", lambda query, hits, **kw: asked.append((query, kw.get("ask"))) or real(
        query, hits, **kw))
    # when a follow-up is asked, and then a question that stands alone
    ask(widget_key, "And is that the same on Saturday?", conversation=first.conversation)
    ask(widget_key, "Do you sell gift cards?", conversation=first.conversation)
    # then the follow-up's head is re-read with the rewrite and the customer's own words; the other by itself
    assert asked == [("And is opening hours the same on Saturday?", "And is that the same on Saturday?"),
                     ("Do you sell gift cards?", "")]


def test_extractive_mode_answers_with_cited_sentences(widget_key, fake_generator):
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, answer_mode="extractive")
    answer = ask(widget_key, "How deep is the borehole for a heat pump?")
    assert answer.outcome == "answered" and answer.reason == "extractive"
    assert "150 to 200 metres" in answer.text
    # every mark in the text names a stored citation, and every citation is marked
    marks = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert marks and marks == {citation["n"] for citation in answer.citations}
    assert fake_generator.requests == []


def test_down_rating_an_answer_removes_it_and_its_copies_source_from_the_cache(widget_key, fake_generator):
    first = ask(widget_key, "What are your opening hours?")
    copy = ask(widget_key, "What are your opening hours?")
    assert copy.outcome == "cached"
    # when the cached copy is rated down
    services.feedback_record(message=copy, rating="down", comment="wrong hours")
    # then the entry is gone and the next asker gets a fresh answer
    assert not CachedAnswer.objects.exists()
    assert ask(widget_key, "What are your opening hours?").outcome == "direct"
    assert Feedback.objects.get(message=copy).comment == "wrong hours"
    # one feedback per message: a second rating replaces the first
    services.feedback_record(message=copy, rating="up")
    assert Feedback.objects.filter(message=copy).count() == 1 and Feedback.objects.get(message=copy).rating == "up"
    assert first.outcome == "direct"


def test_a_new_index_version_does_not_serve_old_cached_answers(widget_key, fake_generator):
    from kb.indexing import index_build

    ask(widget_key, "What are your opening hours?")
    index_build(knowledge_base_id=widget_key.knowledge_base_id)
    widget_key.knowledge_base.refresh_from_db()
    assert ask(widget_key, "What are your opening hours?").outcome == "direct"


def test_handoff_request_stores_a_notice_and_flags_the_conversation(widget_key, fake_generator):
    first = ask(widget_key, "What are your opening hours?")
    started = services.handoff_request(conversation=first.conversation)
    notice = answer_of(started)
    assert notice.outcome == "handed_off" and "team" in notice.text
    assert Conversation.objects.get(pk=first.conversation_id).status == "handed_off"


@pytest.mark.parametrize("question", ["Hello!", "Thank you so much"])
def test_chitchat_is_a_short_generation_without_passages(widget_key, fake_generator, question, settings):
    answer = ask(widget_key, question)
    assert answer.outcome == "pending" and answer.reason == "chitchat" and answer.passages == []
    assert fake_generator.requests[-1]["max_new_tokens"] == settings.KEFU_CHAT_CHITCHAT_TOKENS


@pytest.mark.parametrize(("question", "expected"), [
    ("Hello!", "Hello! How can I help you today?"),
    ("你好", "您好！请问有什么可以帮您？"),
    ("Thanks a lot", "You're welcome! Is there anything else I can help you with?"),
    ("Who are you?", "I'm the virtual assistant of this site"),
])
def test_small_talk_on_an_extractive_base_gets_kefus_own_reply_in_the_customers_language(
        widget_key, fake_generator, question, expected):
    # given a base that answers extractively
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, answer_mode="extractive")
    # when a customer makes small talk
    answer = ask(widget_key, question)
    # then Kefu answers in its own words, and the generator is never asked
    assert answer.outcome == "answered" and answer.reason == "smalltalk" and answer.text.startswith(expected)
    assert fake_generator.requests == []


@pytest.mark.parametrize("mode", ["extractive", "generative"])
@pytest.mark.parametrize("question", ["Translate 'good morning' into Japanese.", "Write me a poem about roofs",
                                      "把这句话翻译成日语", "Can you write Python code that sorts a list?"])
def test_a_task_outside_any_base_gets_the_scope_message_with_the_offer_of_a_person(
        widget_key, fake_generator, mode, question):
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, answer_mode=mode)
    answer = ask(widget_key, question)
    assert answer.outcome == "refused" and answer.reason == "task_request"
    assert "人工客服" in answer.text if "翻译" in question else "connect you with a member of our team" in answer.text
    assert fake_generator.requests == []


def test_a_clear_but_not_close_enough_faq_match_is_offered_whole_with_its_question(widget_key, fake_generator):
    # given an extractive base, and a paraphrase of one FAQ question (under the direct threshold)
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, answer_mode="extractive")
    kb = widget_key.knowledge_base
    kb.direct_answer_threshold = 0.99
    kb.save(update_fields=["direct_answer_threshold"])
    # when it is asked
    answer = ask(widget_key, "Is there a guarantee on your renovation work?")
    # then the whole answer comes, introduced with its question, and cites the entry
    assert answer.outcome == "answered" and answer.reason == "faq_suggested"
    assert answer.text.startswith("This may help — **Do you offer a warranty on renovation work?**")
    assert "five-year warranty on workmanship. [1]" in answer.text
    assert answer.citations[0]["faq_entry_id"] is not None


def test_an_exact_cache_hit_is_served_without_embedding_the_question(widget_key, fake_generator, monkeypatch):
    ask(widget_key, "What are your opening hours?")
    monkeypatch.setattr(services, "embed_question", lambda text, **kw: pytest.fail("embedded an exact hit"))
    assert ask(widget_key, "WHAT are your opening hours").outcome == "cached"


def test_a_pending_answer_nobody_read_is_finished_from_its_stream(widget_key, fake_generator):
    # given a generated answer whose stream ended while no reader was attached
    answer = ask(widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    assert answer.outcome == "pending"
    # when it is reconciled (the history endpoint does this)
    finished = services.message_reconcile(message=answer)
    # then it carries the generator's answer
    assert finished.outcome == "answered" and finished.text == fake_generator.answer


def test_a_pending_answer_whose_stream_expired_is_finished_from_the_stored_job(widget_key, fake_generator,
                                                                             monkeypatch):
    from chat import generation
    from inference.models import GenerationJob

    fake_generator.write_immediately = False
    answer = ask(widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    job_id = fake_generator.requests[0]["job_id"]
    # given no stream events (expired) and a job row the worker reaped as failed
    GenerationJob.objects.create(id=job_id, messages=[{"role": "user", "content": "q"}], temperature=0, top_p=1,
                                 max_new_tokens=8, status="failed", error_code="worker_lost", error="died")
    assert services.message_reconcile(message=answer).outcome == "failed"
    assert Message.objects.get(pk=answer.pk).error_code == "worker_lost"
    # and one still running is left alone
    fake_generator.write_immediately = False
    other = ask(widget_key, "How long does drilling for a heat pump take?")
    GenerationJob.objects.create(id=fake_generator.requests[-1]["job_id"], messages=[{"role": "user", "content": "q"}],
                                 temperature=0, top_p=1, max_new_tokens=8, status="running")
    assert services.message_reconcile(message=other).outcome == "pending"
    assert generation.final_event(fake_generator.requests[-1]["job_id"]) is None


def test_the_cache_hit_rate_counts_questions_served_from_the_cache(widget_key, fake_generator):
    from chat.selectors import cache_hit_rate

    for _ in range(3):
        ask(widget_key, "What are your opening hours?")
    ask(widget_key, "Who won the football match yesterday?")
    assert cache_hit_rate(knowledge_base_id=widget_key.knowledge_base_id) == (2, 4)
    assert cache_hit_rate(knowledge_base_id=widget_key.knowledge_base_id + 1) == (0, 0)


def test_the_demo_base_answers_extractively_with_the_bundled_model_unless_configured(support_kb, settings):
    from chat.models import ChatProfile
    from chat.services import demo_profile_ensure

    # given the bundled CPU generator
    settings.KEFU_MODEL = "smollm2-135m"
    # when the demo base's chat profile is ensured
    demo_profile_ensure(knowledge_base=support_kb)
    # then it answers with cited extracts instead of generating
    assert ChatProfile.objects.get(knowledge_base=support_kb).answer_mode == "extractive"
    # and an admin's later choice is kept by a second run
    ChatProfile.objects.filter(knowledge_base=support_kb).update(answer_mode="generative")
    assert "kept" in demo_profile_ensure(knowledge_base=support_kb)
    assert ChatProfile.objects.get(knowledge_base=support_kb).answer_mode == "generative"


def test_a_demo_base_on_a_larger_generator_generates(support_kb, settings):
    from chat.models import ChatProfile
    from chat.services import demo_profile_ensure

    settings.KEFU_MODEL = "/models/Qwen2.5-7B-Instruct"
    demo_profile_ensure(knowledge_base=support_kb)
    assert ChatProfile.objects.get(knowledge_base=support_kb).answer_mode == "generative"


def test_a_generated_i_dont_know_becomes_kefus_own_refusal_with_the_offer_of_a_person(widget_key, fake_generator):
    # given a knowledge question waiting on the generator
    answer = ask(widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    # when the model only says it does not know
    finished = services.message_finalize(message=answer, event=done_event("You do not know and can't help."))
    # then the customer gets Kefu's "I don't know" with the hand-off offer, recorded as a refusal (a knowledge gap)
    assert finished.outcome == "refused" and finished.reason == "model_dont_know"
    assert "don't know" in finished.text and "team" in finished.text and finished.citations == []
    assert finished.completion_tokens == 9 and finished.timings["ttft_ms"] == 30.0
    assert Message.objects.get(pk=answer.reply_to_id).outcome == "refused"
    assert not CachedAnswer.objects.exists()


def test_a_follow_ups_vector_keeps_its_own_ask_while_the_history_fills_in_the_topic(support_kb):
    import numpy as np

    from chat.pipeline.history import Turn, standalone_question

    # given a follow-up rewritten with the previous question's topic
    standalone = standalone_question("is that deductible?", [Turn("user", "What does a new tiled roof cost?"),
                                                              Turn("assistant", "About 200,000 SEK [1].")])
    assert standalone.depends_on_history
    # when its vector is computed for the cache, intent and retrieval
    vector = services.standalone_vector(standalone, question="is that deductible?", kb=support_kb)
    rewritten = services.embed_question(standalone.query, kb=support_kb)
    bare = services.embed_question("is that deductible?", kb=support_kb)
    # then it is a unit vector between the rewritten query and the bare ask, nearer the ask than the rewrite is
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert float(vector @ bare) > float(rewritten @ bare) and float(vector @ rewritten) > float(bare @ rewritten)
    # and a question that stands alone keeps its own vector
    alone = standalone_question("What does a new tiled roof cost?", [])
    np.testing.assert_allclose(services.standalone_vector(alone, question=alone.query, kb=support_kb),
                               services.embed_question(alone.query, kb=support_kb), atol=1e-6)


# --- every reply the base produces is masked (issue 16: 8) --------------------------------------------

def test_a_direct_faq_answer_is_masked_with_the_bases_words(widget_key, fake_generator):
    # given a base that lists a word its own FAQ answer holds
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, sensitive_words="Friday")
    # when the FAQ question is asked
    answer = ask(widget_key, "What are your opening hours?")
    # then the direct answer is stored (and served) masked
    assert answer.outcome == "direct" and answer.text == "We are open Monday to ******, 8:00 to 17:00."


def test_a_cached_answer_is_masked_with_words_listed_after_it_was_cached(widget_key, fake_generator):
    # given an answer cached before the word was listed
    first = ask(widget_key, "What are your opening hours?")
    assert "Friday" in first.text
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, sensitive_words="friday")
    # when the same question is served from the cache
    again = ask(widget_key, "what are your opening hours")
    # then the cached copy is masked too
    assert again.outcome == "cached" and again.text == "We are open Monday to ******, 8:00 to 17:00."


def test_an_extractive_answer_is_masked_with_the_bases_words(widget_key, fake_generator):
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, answer_mode="extractive",
                               sensitive_words="metres")
    answer = ask(widget_key, "How deep is the borehole for a heat pump?")
    assert answer.reason == "extractive" and "150 to 200 ******" in answer.text and "metres" not in answer.text


def test_a_suggested_faq_answer_is_masked_with_the_bases_words(widget_key, fake_generator):
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, answer_mode="extractive",
                               sensitive_words="warranty")
    kb = widget_key.knowledge_base
    kb.direct_answer_threshold = 0.99
    kb.save(update_fields=["direct_answer_threshold"])
    answer = ask(widget_key, "Is there a guarantee on your renovation work?")
    assert answer.reason == "faq_suggested" and "warranty" not in answer.text.lower()
    assert answer.text.startswith("This may help — **Do you offer a ******** on renovation work?**")


def test_a_faq_answer_reciting_the_custom_prompt_broken_up_by_line_breaks_is_masked(widget_key, fake_generator):
    from kb.models import FaqEntry

    # given a custom prompt, and a FAQ answer that (planted, or pasted by mistake) recites it line by line
    prompt = "You are the Support assistant. The staff discount code is NORDIC-55 for employees only."
    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, system_prompt=prompt)
    entry = FaqEntry.objects.get(question="What are your opening hours?")
    FaqEntry.objects.filter(pk=entry.pk).update(answer="Open 8-17.\nThe staff\ndiscount - code\nis NORDIC-55 for employees")
    from kb.indexing import index_build

    index_build(knowledge_base_id=widget_key.knowledge_base_id)
    widget_key.knowledge_base.refresh_from_db()
    # when it is answered directly
    answer = ask(widget_key, "What are your opening hours?")
    # then the recited run is masked and the rest is kept
    assert answer.outcome == "direct" and answer.text.startswith("Open 8-17.\n")
    assert "NORDIC" not in answer.text and "discount" not in answer.text


def test_a_question_that_may_point_back_is_read_the_way_the_base_matches_better(support_kb):
    from chat.pipeline.history import Turn

    turns = [Turn("user", "How much does a ground source heat pump cost?"), Turn("assistant", "It depends [1].")]
    # given a question naming its own topic that also says "it": the drilling is about the heat pump
    contextual = services.standalone_of(support_kb, "do the workers drilling it need a municipal permit first?", turns)
    # then the reading with the heat pump filled in is kept, as a follow-up
    assert contextual.depends_on_history and "ground source heat pump" in contextual.query
    assert contextual.alternative is None
    # and a question whose "it" points inside itself is kept as asked
    alone = services.standalone_of(support_kb, "How long does it take the municipality to approve a building permit?",
                                   turns)
    assert alone.query == "How long does it take the municipality to approve a building permit?"
    assert not alone.depends_on_history and alone.alternative is None


def test_a_follow_up_is_searched_with_the_bases_gloss_of_the_term_it_inherited(support_kb):
    from chat.pipeline.history import Turn
    from kb.retrieval import glossary
    from kb.services import faq_entry_create

    # given the base explains a Swedish term in brackets
    glossary.forget_glossaries()
    faq_entry_create(knowledge_base=support_kb, question="What is a servitut?",
                     answer="An easement (servitut) is a right to use part of another property.", rebuild=False)
    turns = [Turn("user", "what is a servitut?"), Turn("assistant", "An easement [1].")]
    # when the follow-up points back at it
    standalone = services.standalone_of(support_kb, "can it be removed?", turns)
    # then the topic is filled in and then explained as the base explains it
    assert standalone.depends_on_history and "servitut (easement)" in standalone.query
    glossary.forget_glossaries()


def test_an_i_dont_know_offers_the_bases_closest_faq_questions(widget_key, fake_generator, monkeypatch):
    from chat.pipeline import extractive

    # given passages with no sentence about the question, so Kefu does not know the answer
    monkeypatch.setattr(extractive, "has_support", lambda **kwargs: False)
    # when a question close to an FAQ question is asked
    answer = ask(widget_key, "Is there any warranty when you renovate my kitchen?")
    # then the refusal offers that FAQ question, stored on the reply
    assert answer.outcome == "refused" and answer.reason == "no_relevant_sentence"
    assert answer.suggestions[0] == "Do you offer a warranty on renovation work?"
    assert Message.objects.get(pk=answer.pk).suggestions == answer.suggestions


def test_a_generated_i_dont_know_offers_the_questions_its_generation_held(widget_key, fake_generator):
    # given a knowledge question close to an FAQ question, waiting on the generator
    answer = ask(widget_key, "Is there a warranty when you renovate my kitchen, and for how long exactly?")
    assert answer.outcome == "pending" and answer.offered_questions == []
    # when the model only says it does not know
    finished = services.message_finalize(message=answer, event=done_event("You do not know and can't help."))
    # then the refusal offers the FAQ questions found for it, as any "I don't know" does
    assert finished.reason == "model_dont_know"
    assert "Do you offer a warranty on renovation work?" in finished.offered_questions


def test_a_generated_answer_offers_no_questions(widget_key, fake_generator):
    # given the same question waiting on the generator
    answer = ask(widget_key, "Is there a warranty when you renovate my kitchen, and for how long exactly?")
    # when the model answers it
    finished = services.message_finalize(message=answer, event=done_event("Yes, five years [1]."))
    # then nothing is offered, and nothing is kept for later
    assert finished.outcome == "answered" and finished.offered_questions == []
    assert Message.objects.get(pk=answer.pk).suggestions == []


def test_a_scope_refusal_offers_no_questions(widget_key, fake_generator):
    answer = ask(widget_key, "Translate 'warranty on renovation work' into French, please.")
    assert answer.outcome == "refused" and answer.reason == "task_request" and answer.suggestions == []
