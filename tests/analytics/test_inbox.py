"""The hand-off inbox: oldest first, transcript, a staff reply the widget's stream serves, closing."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Conversation, Message
from tests.analytics import seed


@pytest.fixture
def waiting(db):
    kb = seed.knowledge_base("shop")
    key = seed.widget_key(kb, "web")
    now = timezone.now()
    newer = seed.conversation(kb, at=now - timedelta(minutes=5), key=key, visitor="v-new", status="handed_off")
    seed.exchange(newer, at=now - timedelta(minutes=5), question="I want a person", outcome="handed_off")
    older = seed.conversation(kb, at=now - timedelta(hours=2), key=key, visitor="v-old", status="handed_off")
    seed.exchange(older, at=now - timedelta(hours=2), question="My parcel is damaged", outcome="handed_off",
                  answer="Let me get a colleague.")
    seed.exchange(seed.conversation(kb, at=now, key=key), at=now)  # not waiting
    return {"kb": kb, "key": key, "older": older, "newer": newer}


def test_inbox_lists_waiting_conversations_oldest_first(staff_client, waiting):
    response = staff_client.get("/staff/inbox/")
    items = response.context["items"]
    assert [item.conversation_id for item in items] == [waiting["older"].public_id, waiting["newer"].public_id]
    assert items[0].last_question == "My parcel is damaged" and items[0].channel == "web"


def test_transcript_shows_every_message(staff_client, waiting):
    response = staff_client.get(f"/staff/conversations/{waiting['older'].public_id}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "My parcel is damaged" in body and "Let me get a colleague." in body and "Send reply" in body


def test_transcript_shows_how_a_follow_up_was_searched(staff_client, db):
    # given a conversation whose second question leaned on the first (stored as retrieval read it)
    kb = seed.knowledge_base("shop")
    conv = seed.conversation(kb, at=timezone.now() - timedelta(minutes=5))
    seed.exchange(conv, at=timezone.now() - timedelta(minutes=5), question="What does a new roof cost?")
    follow_up, _ = seed.exchange(conv, at=timezone.now() - timedelta(minutes=4), question="how long does it take?")
    Message.objects.filter(pk=follow_up.pk).update(standalone_query="how long does new roof cost take?")
    # when staff read the conversation
    body = staff_client.get(f"/staff/conversations/{conv.public_id}/").content.decode()
    # then the follow-up shows the reading it was searched with, once; a question that stood alone shows none
    assert body.count("Searched as (the conversation") == 1
    assert "<q>how long does new roof cost take?</q>" in body


def test_unknown_conversation_is_404(staff_client, db):
    assert staff_client.get("/staff/conversations/missing/").status_code == 404
    assert staff_client.post("/staff/conversations/missing/reply", {"text": "hi"}).status_code == 404


def test_staff_reply_reaches_the_widget_through_the_chat_api_and_stream(staff_client, client, waiting):
    from chat import sse

    conversation = waiting["older"]
    # when staff reply from the inbox
    response = staff_client.post(f"/staff/conversations/{conversation.public_id}/reply",
                                 {"text": "Sorry about that, a new parcel is on its way."})
    assert response.status_code == 302
    # then the widget's history call lists it as an assistant message with a stream URL
    history = client.get(f"/api/v1/chat/conversations/{conversation.public_id}",
                         HTTP_X_KEFU_KEY=waiting["key"].public_key)
    assert history.status_code == 200
    last = history.json()["messages"][-1]
    assert (last["role"], last["text"]) == ("assistant", "Sorry about that, a new parcel is on its way.")
    # and its stream delivers the text as the done event, as for any finished reply
    message = Message.objects.select_related("conversation").get(pk=last["id"])

    async def collect():
        return [chunk async for chunk in sse.message_events(message)]

    chunks = asyncio.run(collect())
    done = next(chunk for chunk in chunks if chunk.startswith("id: final\nevent: done"))
    assert json.loads(done.split("data: ", 1)[1])["answer"] == "Sorry about that, a new parcel is on its way."
    # and the conversation still waits in the inbox until it is closed
    assert Conversation.objects.get(pk=conversation.pk).status == "handed_off"


def test_staff_reply_is_not_a_customer_question_in_the_rollups(staff_client, waiting):
    from analytics.models import HourlyRollup
    from analytics.rollups import rollup_refresh

    staff_client.post(f"/staff/conversations/{waiting['older'].public_id}/reply", {"text": "On it."})
    rollup_refresh()
    totals = [(row.questions, row.outcome_handed_off) for row in HourlyRollup.objects.all()]
    assert sum(q for q, _ in totals) == 3 and sum(h for _, h in totals) == 2


def test_empty_reply_is_refused(staff_client, waiting):
    response = staff_client.post(f"/staff/conversations/{waiting['older'].public_id}/reply", {"text": "  "})
    assert response.status_code == 400
    assert not Message.objects.filter(reason="staff_reply").exists()


def test_closing_takes_the_conversation_out_of_the_inbox_and_stops_questions(staff_client, client, waiting):
    conversation = waiting["older"]
    # when staff close it
    response = staff_client.post(f"/staff/conversations/{conversation.public_id}/close")
    # then it is closed, gone from the inbox, and the widget cannot ask more in it
    assert response.status_code == 302 and response["Location"] == "/staff/inbox/"
    assert Conversation.objects.get(pk=conversation.pk).status == "closed"
    assert [i.conversation_id for i in staff_client.get("/staff/inbox/").context["items"]] == [
        waiting["newer"].public_id]
    asked = client.post("/api/v1/chat/messages", {"text": "hello?", "conversation_id": conversation.public_id},
                        content_type="application/json", HTTP_X_KEFU_KEY=waiting["key"].public_key,
                        HTTP_ORIGIN="https://shop.example")
    assert asked.status_code == 409
    # and a reply to a closed conversation is refused
    assert staff_client.post(f"/staff/conversations/{conversation.public_id}/reply",
                             {"text": "hi"}).status_code == 400


def test_down_rated_answers_list_question_answer_citations_and_link(staff_client, db):
    kb = seed.knowledge_base("shop")
    now = timezone.now()
    conv = seed.conversation(kb, at=now - timedelta(hours=1))
    citation = {"n": 1, "document_id": 1, "document_title": "Returns policy", "page": 3, "section": "Refunds",
                "snippet": "Refunds within 30 days", "chunk_id": 9}
    seed.exchange(conv, at=now - timedelta(hours=1), question="Refund after 60 days?", answer="Yes, always [1].",
                  citations=[citation], rating="down")
    seed.exchange(conv, at=now - timedelta(hours=1), question="Opening hours?", rating="up")
    response = staff_client.get("/staff/feedback/", {"range": "24h"})
    body = response.content.decode()
    assert [a.question for a in response.context["answers"]] == ["Refund after 60 days?"]
    assert "Yes, always [1]." in body and "Returns policy" in body and "p. 3" in body
    assert f"/staff/conversations/{conv.public_id}/" in body
