"""The chat API over HTTP: 4xx decided in the view with JSON bodies and nothing stored, SSE answers, CORS."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from chat.models import Conversation, Feedback, Message
from tests.chat.conftest import sse_events

ORIGIN = "https://shop.example.com"


def post(client, path, body, *, key=None, origin=ORIGIN, content_type="application/json"):
    headers = {}
    if key is not None:
        headers["HTTP_X_KEFU_KEY"] = key
    if origin:
        headers["HTTP_ORIGIN"] = origin
    data = json.dumps(body) if isinstance(body, dict) else body
    return client.post(path, data=data, content_type=content_type, **headers)


def ask(client, widget_key, text, **extra):
    return post(client, "/api/v1/chat/messages", {"text": text, **extra}, key=widget_key.public_key)


def stream(client, started, **headers):
    return client.get(started.json()["stream_url"].replace("http://testserver", ""), **headers)


@pytest.mark.parametrize("key_kind, origin, body, status, code", [
    ("none", ORIGIN, {"text": "hi"}, 401, "missing_key"),
    ("unknown", ORIGIN, {"text": "hi"}, 403, "unknown_key"),
    ("good", "https://evil.example.net", {"text": "hi"}, 403, "origin_not_allowed"),
    ("good", "", {"text": "hi"}, 403, "origin_required"),
    ("good", ORIGIN, {"text": "   "}, 400, "empty_text"),
    ("good", ORIGIN, {"text": "x" * 2001}, 400, "text_too_long"),
    ("good", ORIGIN, {"text": 5}, 400, "invalid_text"),
    ("good", ORIGIN, "{not json", 400, "invalid_json"),
    ("good", ORIGIN, {"text": "hi", "conversation_id": "nope"}, 404, "conversation_not_found"),
])
def test_bad_requests_get_a_json_error_and_store_nothing(client, widget_key, key_kind, origin, body, status, code):
    key = {"none": None, "unknown": "pk_nope", "good": widget_key.public_key}[key_kind]
    response = post(client, "/api/v1/chat/messages", body, key=key, origin=origin)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    assert not Message.objects.exists() and not Conversation.objects.exists()


def test_a_disabled_key_is_refused(client, widget_key):
    widget_key.enabled = False
    widget_key.save()
    assert ask(client, widget_key, "hello").status_code == 403


def test_other_content_types_are_refused(client, widget_key):
    response = post(client, "/api/v1/chat/messages", "text=hi", key=widget_key.public_key,
                    content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_the_rate_limit_answers_429_with_retry_after(client, widget_key, settings, fake_generator):
    settings.KEFU_CHAT_RATE_LIMITS = {"key": (100, 60), "ip": (2, 60), "conversation": (100, 60)}
    assert ask(client, widget_key, "What are your opening hours?").status_code == 202
    assert ask(client, widget_key, "What are your opening hours?").status_code == 202
    refused = ask(client, widget_key, "What are your opening hours?")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert Message.objects.filter(role="user").count() == 2


def test_a_direct_answer_is_202_then_one_done_event_on_the_stream(client, widget_key, fake_generator):
    started = ask(client, widget_key, "What are your opening hours?")
    assert started.status_code == 202 and started["Access-Control-Allow-Origin"] == ORIGIN
    body = started.json()
    assert body["outcome"] == "direct" and body["conversation_id"] and body["stream_url"].endswith("/stream")
    response = stream(client, started)
    assert response["Content-Type"] == "text/event-stream" and response["X-Accel-Buffering"] == "no"
    events = sse_events(response)
    assert [e["event"] for e in events] == ["done"]
    done = events[0]["data"]
    assert done["answer"].startswith("We are open Monday to Friday") and done["citations"]
    assert done["timings"]["total_ms"] > 0 and done["outcome"] == "direct"
    # a reader that already has the final event is told there is nothing more
    again = stream(client, started, HTTP_LAST_EVENT_ID=events[0]["id"])
    assert again.status_code == 204


def test_a_generated_answer_streams_tokens_then_done_and_resumes_without_duplicates(client, widget_key,
                                                                                     fake_generator):
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    assert started.json()["outcome"] == "pending"
    events = sse_events(stream(client, started))
    tokens = [e for e in events if e["event"] == "token"]
    assert len(tokens) > 3 and events[-1]["event"] == "done"
    streamed = "".join(e["data"]["text"] for e in tokens)
    assert streamed == fake_generator.answer == events[-1]["data"]["answer"]
    assert events[-1]["data"]["citations"][0]["n"] == 1
    assert "first_token_ms" in Message.objects.get(pk=started.json()["message_id"]).timings
    # when a reader resumes after the third token, it gets exactly the rest
    resumed = sse_events(stream(client, started, HTTP_LAST_EVENT_ID=tokens[2]["id"]))
    # then (the message is final now) it gets the done event with the full answer, no repeated tokens
    assert [e["event"] for e in resumed] == ["done"]


def test_resuming_mid_generation_replays_nothing_already_sent(client, widget_key, fake_generator):
    # given a generation whose first tokens were sent, then the reader dropped
    fake_generator.write_immediately = False
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    job_id = fake_generator.requests[0]["job_id"]
    fake_generator.finish(job_id)
    message = Message.objects.get(pk=started.json()["message_id"])
    from inference.stream import open_stream
    all_events = open_stream(job_id).read("0-0")
    third = all_events[2].id
    # when it resumes after the third token
    from chat.sse import message_events

    async def collect():
        return [chunk async for chunk in message_events(message, last_event_id=third, grace_s=0)]
    text = "".join(async_to_sync(collect)())
    # then it receives tokens 4.. and done, none of 1..3
    sent_ids = [line[4:] for line in text.splitlines() if line.startswith("id: ")]
    assert sent_ids == [e.id for e in all_events[3:]]


def test_a_streamed_sensitive_word_is_masked_across_tokens(client, widget_key, fake_generator):
    from chat.models import ChatProfile

    ChatProfile.objects.create(knowledge_base=widget_key.knowledge_base, sensitive_words="competitor")
    fake_generator.answer = "Unlike our compet itor friends [1]."
    fake_generator.pieces = ["Unlike our comp", "etitor", " friends [1]."]
    fake_generator.answer = "Unlike our competitor friends [1]."
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    events = sse_events(stream(client, started))
    streamed = "".join(e["data"]["text"] for e in events if e["event"] == "token")
    assert "comp" not in streamed and streamed == "Unlike our ********** friends [1]."
    assert events[-1]["data"]["answer"] == streamed


def test_a_failed_generation_ends_with_an_error_event(client, widget_key, fake_generator):
    fake_generator.write_immediately = False
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    fake_generator.fail(fake_generator.requests[0]["job_id"])
    events = sse_events(stream(client, started))
    assert events[-1]["event"] == "error" and events[-1]["data"]["code"] == "worker_lost"
    assert Message.objects.get(pk=started.json()["message_id"]).outcome == "failed"


def test_the_last_reader_leaving_cancels_the_generation(client, widget_key, fake_generator):
    # given a generation that has produced two tokens so far (long enough to pass the output gate's hold; a
    # token is relayed when the next one arrives)
    fake_generator.write_immediately = False
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    job_id = fake_generator.requests[0]["job_id"]
    from inference.stream import open_stream, write_token
    write_token(open_stream(job_id), "Yes, drilling needs a permit from the municipality")
    write_token(open_stream(job_id), " before")
    message = Message.objects.get(pk=started.json()["message_id"])
    from chat.sse import message_events

    async def read_one_then_leave():
        events = message_events(message, grace_s=0)
        first = [await events.__anext__(), await events.__anext__()]
        await events.aclose()  # what the ASGI handler does when the client disconnects
        return first
    first = async_to_sync(read_one_then_leave)()
    # then the token arrived, and leaving cancelled the job
    assert '"Yes, drilling needs a permit' in first[1]
    assert fake_generator.cancelled == [job_id]


def test_a_second_reader_keeps_the_generation_alive(client, widget_key, fake_generator):
    fake_generator.write_immediately = False
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    message = Message.objects.get(pk=started.json()["message_id"])
    from chat.stream_readers import reader_join, reader_leave, schedule_cancel
    reader_join(message.pk)
    reader_join(message.pk)
    assert reader_leave(message.pk) == 1
    schedule_cancel(message.pk, 0)
    assert fake_generator.cancelled == []


def test_cors_preflight_is_answered_for_allowed_origins_only(client, widget_key):
    ok = client.options("/api/v1/chat/messages", HTTP_ORIGIN=ORIGIN,
                        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST", HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-kefu-key")
    assert ok.status_code == 204 and ok["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Kefu-Key" in ok["Access-Control-Allow-Headers"]
    refused = client.options("/api/v1/chat/messages", HTTP_ORIGIN="https://evil.example.net")
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused


def test_a_stream_read_from_another_origin_is_refused(client, widget_key, fake_generator):
    started = ask(client, widget_key, "What are your opening hours?")
    response = stream(client, started, HTTP_ORIGIN="https://evil.example.net")
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
    assert client.get("/api/v1/chat/messages/not-a-uuid/stream").status_code == 404


def test_feedback_handoff_and_history(client, widget_key, fake_generator):
    started = ask(client, widget_key, "What are your opening hours?").json()
    feedback_url = f"/api/v1/chat/messages/{started['message_id']}/feedback"
    assert post(client, feedback_url, {"rating": "meh"}, key=widget_key.public_key).status_code == 400
    rated = post(client, feedback_url, {"rating": "up", "comment": " thanks "}, key=widget_key.public_key)
    assert rated.status_code == 200 and rated.json() == {"message_id": started["message_id"], "rating": "up",
                                                          "comment": "thanks"}
    assert Feedback.objects.get().rating == "up"
    handoff = post(client, f"/api/v1/chat/conversations/{started['conversation_id']}/handoff", {},
                   key=widget_key.public_key)
    assert handoff.status_code == 202 and handoff.json()["outcome"] == "handed_off"
    history = client.get(f"/api/v1/chat/conversations/{started['conversation_id']}",
                         HTTP_X_KEFU_KEY=widget_key.public_key, HTTP_ORIGIN=ORIGIN).json()
    assert history["status"] == "handed_off"
    assert [(m["role"], m["outcome"]) for m in history["messages"]] == [
        ("user", "direct"), ("assistant", "direct"), ("assistant", "handed_off")]
    assert history["messages"][1]["feedback"] == "up" and history["messages"][1]["citations"]
    # another key's base cannot read it
    other = client.get(f"/api/v1/chat/conversations/{started['conversation_id']}", HTTP_X_KEFU_KEY="pk_nope")
    assert other.status_code == 403


def test_the_schema_describes_every_endpoint(client):
    document = client.get("/api/v1/chat/schema").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/messages", "/messages/{message_id}/stream",
                                      "/messages/{message_id}/feedback", "/conversations/{conversation_id}",
                                      "/conversations/{conversation_id}/handoff",
                                      "/conversations/{conversation_id}/events"}


def test_a_quiet_generation_gets_heartbeat_comments(client, widget_key, fake_generator, settings):
    import threading

    settings.KEFU_CHAT_HEARTBEAT_S = 0.01
    fake_generator.write_immediately = False
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    job_id = fake_generator.requests[0]["job_id"]
    message = Message.objects.get(pk=started.json()["message_id"])
    # given a generator that is silent for over a second before answering
    threading.Timer(1.3, fake_generator.finish, args=(job_id,)).start()
    from chat.sse import message_events

    async def collect():
        return "".join([chunk async for chunk in message_events(message, grace_s=0)])
    body = async_to_sync(collect)()
    # then the silence was filled with comment lines, and the answer still came
    assert ": heartbeat" in body and "event: done" in body
    assert body.index(": heartbeat") < body.index("event: token")


def test_in_service_mode_the_relay_reads_redis_streams(client, widget_key, fake_generator, settings,
                                                                  redis_url, redis_client):
    # given service mode: token streams live in the real Redis
    settings.REDIS_URL = redis_url
    started = ask(client, widget_key, "Do I need a permit before drilling for a ground source heat pump?")
    job_id = fake_generator.requests[0]["job_id"]
    from inference.stream import KEY_PREFIX, open_stream

    stream = open_stream(job_id)
    assert redis_client.exists(KEY_PREFIX + job_id) and len(stream.read("0-0")) > 3
    try:
        # when a reader streams the answer
        stream_response = stream_get(client, started)
        events = sse_events(stream_response)
        assert stream_response["Content-Type"] == "text/event-stream"
        tokens = [e for e in events if e["event"] == "token"]
        assert "".join(e["data"]["text"] for e in tokens) == fake_generator.answer
        assert events[-1]["event"] == "done" and events[-1]["id"] == stream.read("0-0")[-1].id
        # then a reader that already has the final event gets nothing more
        assert stream_get(client, started, HTTP_LAST_EVENT_ID=events[-1]["id"]).status_code == 204
    finally:
        stream.delete()


def stream_get(client, started, **headers):
    return stream(client, started, **headers)


def test_a_taken_suggestion_is_stored_with_the_refusal_that_offered_it(client, widget_key, fake_generator,
                                                                         monkeypatch):
    from chat.models import Message
    from chat.pipeline import extractive

    # given a refusal that offered an FAQ question
    monkeypatch.setattr(extractive, "has_support", lambda **kwargs: False)
    refused = ask(client, widget_key, "Is there any warranty when you renovate my kitchen?").json()
    offered = refused["done"]["suggestions"][0]
    monkeypatch.undo()
    # when the customer takes it
    taken = ask(client, widget_key, offered, conversation_id=refused["conversation_id"],
                offered_by=refused["done"]["message_id"])
    # then it is asked as any question, and the question remembers the refusal it came from
    assert taken.status_code == 202
    question = Message.objects.get(pk=taken.json()["message_id"]).reply_to
    assert question.text == offered and str(question.taken_from_id) == refused["done"]["message_id"]


@pytest.mark.parametrize("offered_by_of", [
    lambda refused, answered: answered["message_id"],  # a reply that offered nothing (pending on the generator)
    lambda refused, answered: "not-a-message-id",
    lambda refused, answered: "00000000-0000-4000-8000-000000000000",
])
def test_offered_by_must_name_a_reply_of_the_conversation_that_offered_the_question(
        client, widget_key, fake_generator, monkeypatch, offered_by_of):
    from chat.models import Message
    from chat.pipeline import extractive

    # given a refusal with its offered questions, and a direct answer in the same conversation
    monkeypatch.setattr(extractive, "has_support", lambda **kwargs: False)
    refused = ask(client, widget_key, "Is there any warranty when you renovate my kitchen?").json()
    monkeypatch.undo()
    answered = ask(client, widget_key, "How long is the warranty on renovation work?",
                   conversation_id=refused["conversation_id"]).json()
    before = Message.objects.count()
    # when a question claims to come from something that did not offer it
    response = ask(client, widget_key, refused["done"]["suggestions"][0], conversation_id=refused["conversation_id"],
                   offered_by=offered_by_of(refused, answered))
    # then it is refused with a clear 400, and nothing is stored
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_offered_by"
    assert Message.objects.count() == before


def test_offered_by_of_another_question_or_without_a_conversation_is_refused(client, widget_key, fake_generator,
                                                                           monkeypatch):
    from chat.pipeline import extractive

    monkeypatch.setattr(extractive, "has_support", lambda **kwargs: False)
    refused = ask(client, widget_key, "Is there any warranty when you renovate my kitchen?").json()
    other = ask(client, widget_key, "What is the meaning of life?", conversation_id=refused["conversation_id"],
                offered_by=refused["done"]["message_id"])
    alone = ask(client, widget_key, refused["done"]["suggestions"][0], offered_by=refused["done"]["message_id"])
    assert other.status_code == 400 and alone.status_code == 400


def test_an_i_dont_know_carries_its_suggested_questions_in_the_reply_and_the_history(
        client, widget_key, fake_generator, monkeypatch):
    from chat.pipeline import extractive

    # given a question the base has passages for but no sentence about
    monkeypatch.setattr(extractive, "has_support", lambda **kwargs: False)
    # when it is asked
    started = ask(client, widget_key, "Is there any warranty when you renovate my kitchen?").json()
    # then the 202's final reply offers the closest FAQ question, and so does the conversation's history
    assert started["done"]["outcome"] == "refused"
    assert started["done"]["suggestions"][0] == "Do you offer a warranty on renovation work?"
    history = client.get(f"/api/v1/chat/conversations/{started['conversation_id']}",
                         HTTP_X_KEFU_KEY=widget_key.public_key, HTTP_ORIGIN=ORIGIN).json()
    assert history["messages"][1]["suggestions"] == started["done"]["suggestions"]
    assert "suggestions" not in history["messages"][0]  # the customer's own message offers nothing
