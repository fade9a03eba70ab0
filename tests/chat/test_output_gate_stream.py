"""The output gate on the real SSE path: what a customer is streamed, what is stored, counted and cached.

Everything is real (views, relay, finaliser, database, embedder, search, cache, metrics) except the
generator: :class:`tests.chat.conftest.FakeGenerator` writes the job's token stream as a worker would.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from prometheus_client import REGISTRY

from chat import services
from chat.models import CachedAnswer, Message
from chat.pipeline import replies
from tests.chat.conftest import split_tokens, sse_events

ORIGIN = "https://shop.example.com"
QUESTION = "Do I need a permit before drilling for a ground source heat pump?"
GOOD = "Yes, drilling needs a permit from the municipality before work starts [1]."
KANA_GARBAGE = "ノノノノン ーースーノー ンン ノースノース ノーノン ースース ノノン ーノーノ スンスン"


def ask(client, widget_key, text, conversation_id=None):
    body = {"text": text, **({"conversation_id": conversation_id} if conversation_id else {})}
    return client.post("/api/v1/chat/messages", data=json.dumps(body), content_type="application/json",
                       HTTP_X_KEFU_KEY=widget_key.public_key, HTTP_ORIGIN=ORIGIN)


def read_stream(client, started, **headers) -> list[dict]:
    url = started.json()["stream_url"].replace("http://testserver", "")
    return sse_events(client.get(url, HTTP_ORIGIN=ORIGIN, **headers))


def rejected_count(kb, check: str) -> float:
    return REGISTRY.get_sample_value("kefu_generation_rejected_total",
                                     {"knowledge_base": kb.slug, "check": check}) or 0.0


def job_token_ids(fake_generator, index: int = -1) -> list[str]:
    from inference.stream import open_stream

    return [e.id for e in open_stream(fake_generator.requests[index]["job_id"]).read("0-0") if e.kind == "token"]


def shown(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "token")


def test_garbage_kana_is_never_shown_and_becomes_the_refusal_with_the_offer_of_a_person(client, widget_key,
                                                                                        fake_generator):
    kb = widget_key.knowledge_base
    before = rejected_count(kb, "script")
    # given a generator that answers an English question with a line of kana
    fake_generator.answer = KANA_GARBAGE
    started = ask(client, widget_key, QUESTION)
    assert started.json()["outcome"] == "pending"
    # when the customer reads the stream
    events = read_stream(client, started)
    done = events[-1]
    # then no character of it was shown, yet every token id went out once, in order (resumable)
    assert shown(events) == ""
    assert [e["id"] for e in events if e["event"] == "token"] == job_token_ids(fake_generator)
    # and the stream ends on Kefu's refusal, which is exactly what is stored
    refusal = replies.reply("dont_know", question=QUESTION)
    assert done["event"] == "done" and done["data"]["answer"] == refusal
    assert (done["data"]["outcome"], done["data"]["reason"]) == ("refused", "generation_rejected")
    stored = Message.objects.select_related("reply_to").get(pk=started.json()["message_id"])
    assert (stored.text, stored.outcome, stored.reason, stored.citations) == (
        refusal, "refused", "generation_rejected", [])
    assert (stored.reply_to.outcome, stored.reply_to.reason) == ("refused", "generation_rejected")  # a gap, and why
    # and it is counted once under the check that failed, and never cached
    assert rejected_count(kb, "script") == before + 1
    assert not CachedAnswer.objects.exists()
    # and a reader coming back later gets the same stored refusal
    again = read_stream(client, started)
    assert [e["event"] for e in again] == ["done"] and again[0]["data"]["answer"] == refusal


def test_a_loop_after_a_good_head_is_cut_off_and_the_done_event_replaces_it(client, widget_key, fake_generator):
    kb = widget_key.knowledge_base
    before = rejected_count(kb, "repetition")
    # given an answer that starts well and then loops on one sentence
    fake_generator.answer = GOOD + " Please call us. [1]" * 8
    started = ask(client, widget_key, QUESTION)
    events = read_stream(client, started)
    streamed = shown(events)
    # then the head was shown, the loop was cut off mid-way, and done carries the refusal that replaces the bubble
    assert streamed.startswith(GOOD) and len(streamed) < len(fake_generator.answer)
    done = events[-1]["data"]
    stored = Message.objects.get(pk=started.json()["message_id"])
    assert (done["outcome"], done["reason"], done["answer"]) == (stored.outcome, stored.reason, stored.text)
    assert (stored.outcome, stored.reason) == ("refused", "generation_rejected")
    assert rejected_count(kb, "repetition") == before + 1


def test_a_good_generated_answer_streams_unchanged_and_is_stored_as_streamed(client, widget_key, fake_generator):
    fake_generator.answer = GOOD
    started = ask(client, widget_key, QUESTION)
    events = read_stream(client, started)
    done = events[-1]["data"]
    stored = Message.objects.get(pk=started.json()["message_id"])
    assert shown(events) == GOOD == done["answer"] == stored.text
    assert (stored.outcome, stored.reason) == ("answered", "generated")
    assert [e["id"] for e in events if e["event"] == "token"] == job_token_ids(fake_generator)


def test_a_reader_resuming_inside_the_held_back_head_still_gets_all_of_it(client, widget_key, fake_generator):
    from chat.sse import message_events

    # given a finished generation whose first two tokens went out empty (held back by the gate)
    fake_generator.answer, fake_generator.write_immediately = GOOD, False
    started = ask(client, widget_key, QUESTION)
    fake_generator.finish(fake_generator.requests[0]["job_id"])
    token_ids = job_token_ids(fake_generator)
    message = Message.objects.get(pk=started.json()["message_id"])
    # when the reader reconnects with the second token's id
    resumed = sse_events(SimpleNamespace(streaming_content=message_events(message, last_event_id=token_ids[1],
                                                                           grace_s=0)))
    # then the gate's held text was rebuilt: it gets the whole answer, under the ids it had not seen
    assert shown(resumed) == GOOD == resumed[-1]["data"]["answer"]
    assert [e["id"] for e in resumed if e["event"] == "token"] == token_ids[2:]


def test_a_short_answer_is_held_back_whole_until_it_passes(client, widget_key, fake_generator):
    # given an answer shorter than the hold, in pieces
    fake_generator.answer = "Yes, you need one [1]."
    started = ask(client, widget_key, QUESTION)
    events = read_stream(client, started)
    tokens = [e for e in events if e["event"] == "token"]
    # then every token but the last went out empty, and the last carried the whole answer
    assert [t["data"]["text"] for t in tokens] == [""] * (len(split_tokens(fake_generator.answer)) - 1) + [
        fake_generator.answer]
    assert events[-1]["data"]["outcome"] == "answered"
    assert "first_token_ms" in Message.objects.get(pk=started.json()["message_id"]).timings


def test_chitchat_in_generative_mode_goes_through_the_gate(client, widget_key, fake_generator):
    kb = widget_key.knowledge_base
    before = rejected_count(kb, "script")
    # given a Chinese greeting, answered in English by the generator (the "你好" case)
    fake_generator.answer = "Hello! I'm here for small talk. How can I help you today?"
    started = ask(client, widget_key, "你好")
    events = read_stream(client, started)
    # then the English reply is never shown and the customer gets Kefu's own words in Chinese
    assert fake_generator.requests, "the greeting was generated"
    assert shown(events) == ""
    assert events[-1]["data"]["answer"] == replies.reply("dont_know", question="你好")
    assert rejected_count(kb, "script") == before + 1
    # while a Chinese reply to a Chinese greeting is shown as generated
    fake_generator.answer = "您好！请问有什么可以帮您？"
    events = read_stream(client, ask(client, widget_key, "你好"))
    assert shown(events) == events[-1]["data"]["answer"] == "您好！请问有什么可以帮您？"


def test_an_answer_with_history_in_its_prompt_is_not_cached_for_other_customers(client, widget_key,
                                                                                  fake_generator):
    # given a conversation with an earlier turn, then a question that reads standalone
    first = ask(client, widget_key, "How long does drilling for a heat pump take?")
    read_stream(client, first)
    conversation = first.json()["conversation_id"]
    fake_generator.answer = GOOD
    follow = ask(client, widget_key, QUESTION, conversation_id=conversation)
    read_stream(client, follow)
    answer = Message.objects.select_related("reply_to").get(pk=follow.json()["message_id"])
    # then the generation saw the earlier turn, the reply is answered and cited, and marked so
    prompt_roles = [m["role"] for m in fake_generator.requests[-1]["messages"]]
    assert prompt_roles.count("user") == 2 and "assistant" in prompt_roles
    assert answer.outcome == "answered" and answer.citations and answer.reply_to.standalone_query == ""
    assert answer.history_in_prompt
    # when another customer asks the same question, it is not a cache hit: it is generated afresh
    other = ask(client, widget_key, QUESTION)
    assert other.json()["outcome"] == "pending"
    read_stream(client, other)
    fresh = Message.objects.get(pk=other.json()["message_id"])
    assert not fresh.history_in_prompt and fresh.outcome == "answered"
    # and that one, with no history in its prompt, is what the next customer gets from the cache
    assert ask(client, widget_key, QUESTION).json()["outcome"] == "cached"


def test_a_thumbs_down_on_a_cached_generated_answer_purges_it(client, widget_key, fake_generator):
    # given a generated answer, served again from the cache to a second customer
    fake_generator.answer = GOOD
    read_stream(client, ask(client, widget_key, QUESTION))
    copy = ask(client, widget_key, QUESTION)
    assert copy.json()["outcome"] == "cached" and CachedAnswer.objects.count() == 1
    # when the second customer rates the cached copy down
    services.feedback_record(message=Message.objects.get(pk=copy.json()["message_id"]), rating="down")
    # then the entry is gone, and the third customer's question is generated again
    assert not CachedAnswer.objects.exists()
    assert ask(client, widget_key, QUESTION).json()["outcome"] == "pending"


def test_an_echoed_passage_header_is_never_streamed_and_the_stored_answer_is_the_streamed_text(
        client, widget_key, fake_generator):
    from chat.pipeline import passages

    # given a generator that copies the prompt's layout: a passage header line before its answer
    fake_generator.write_immediately = False
    started = ask(client, widget_key, QUESTION)
    message = Message.objects.get(pk=started.json()["message_id"])
    first = passages.passage_from_dict(message.passages[0])
    body = "Yes, drilling needs a permit from the municipality before work starts."
    fake_generator.finish(fake_generator.requests[-1]["job_id"], answer=f"[1] ({first.source})\n{body}")
    # when the customer reads the stream
    events = read_stream(client, started)
    done = events[-1]["data"]
    # then the header was never shown, every token id still went out once, in order
    assert first.source not in shown(events)
    assert [e["id"] for e in events if e["event"] == "token"] == job_token_ids(fake_generator)
    # and the done answer and the stored answer are exactly what was streamed, the header's [1] at the line's end
    stored = Message.objects.get(pk=message.pk)
    assert shown(events) == done["answer"] == stored.text == f"{body} [1]" and stored.outcome == "answered"


def test_an_answer_of_nothing_but_headers_streams_nothing_and_becomes_the_refusal(client, widget_key,
                                                                                fake_generator):
    from chat.pipeline import passages

    # given a generator whose whole answer is an echoed header
    fake_generator.write_immediately = False
    started = ask(client, widget_key, QUESTION)
    message = Message.objects.get(pk=started.json()["message_id"])
    first = passages.passage_from_dict(message.passages[0])
    fake_generator.finish(fake_generator.requests[-1]["job_id"], answer=f"[1] ({first.source})")
    # when the customer reads the stream
    events = read_stream(client, started)
    # then nothing was shown, and the stream ends on Kefu's refusal with the offer of a person, as stored
    assert shown(events) == ""
    done = events[-1]["data"]
    assert (done["outcome"], done["reason"]) == ("refused", "generation_rejected")
    assert done["answer"] == Message.objects.get(pk=message.pk).text == replies.reply("dont_know", question=QUESTION)
