"""Staff replies pushed live: the hand-off inbox's reply reaches an open widget stream without a reload.

The staff side is the real inbox view (``POST /staff/conversations/<id>/reply`` as a logged-in
staff member); the customer side is ``GET /api/v1/chat/conversations/<id>/events`` (SSE).
In service mode the wake-up goes through Redis (the cache), in embedded mode through local memory.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client

from chat.models import Conversation, Message
from tests.conftest import staff_member

ORIGIN = "https://shop.example.com"
pytestmark = pytest.mark.django_db(transaction=True)  # the wake-up is sent when the reply commits


def handed_off_conversation(client, widget_key) -> tuple[str, str]:
    response = client.post("/api/v1/chat/messages", data=json.dumps({"text": "I want to talk to a person"}),
                           content_type="application/json", HTTP_X_KEFU_KEY=widget_key.public_key,
                           HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 202 and response.json()["outcome"] == "handed_off"
    return response.json()["conversation_id"], response.json()["message_id"]


@pytest.fixture
def staff():
    client = Client()
    client.force_login(staff_member("anna", password="pw-anna-123"))
    return client


def events_of(text: str) -> list[dict]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append({"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])})
    return events


def read_while(response, action, *, until: str, timeout_s: float = 15.0) -> list[dict]:
    """Open the stream, run ``action`` (in a thread) once it is open, read until an ``until`` event."""
    async def read():
        chunks = response.streaming_content.__aiter__()
        received = [await asyncio.wait_for(chunks.__anext__(), timeout_s)]  # the opening "retry:" line
        await sync_to_async(action, thread_sensitive=False)()
        while until not in [e["event"] for e in events_of(b"".join(received).decode())]:
            received.append(await asyncio.wait_for(chunks.__anext__(), timeout_s))
        await chunks.aclose()
        return events_of(b"".join(received).decode())

    return async_to_sync(read)()


def open_events(client, conversation_id: str, **headers):
    return client.get(f"/api/v1/chat/conversations/{conversation_id}/events", HTTP_ORIGIN=ORIGIN, **headers)


def test_a_staff_reply_from_the_inbox_reaches_the_open_stream(client, widget_key, staff):
    # given a handed-off conversation whose widget keeps the live stream open
    conversation_id, _ = handed_off_conversation(client, widget_key)
    response = open_events(client, conversation_id)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["Access-Control-Allow-Origin"] == ORIGIN

    # when a staff member replies from the hand-off inbox
    def reply():
        sent = staff.post(f"/staff/conversations/{conversation_id}/reply", {"text": "Hi, this is Anna. Let me help."})
        assert sent.status_code == 302

    events = read_while(response, reply, until="message")

    # then the reply arrives as one message event, with its id as the event id
    [message] = [e for e in events if e["event"] == "message"]
    stored = Message.objects.get(conversation__public_id=conversation_id, reason="staff_reply")
    assert message["id"] == str(stored.pk)
    assert message["data"]["text"] == "Hi, this is Anna. Let me help."
    assert message["data"]["role"] == "assistant" and message["data"]["outcome"] == "handed_off"


def test_a_reconnecting_stream_gets_only_the_replies_after_its_last_event(client, widget_key):
    from chat.staff_replies import staff_reply_send

    # given two staff replies, the first already seen by the widget
    conversation_id, _ = handed_off_conversation(client, widget_key)
    conversation = Conversation.objects.get(public_id=conversation_id)
    first = staff_reply_send(conversation=conversation, text="First reply.")
    staff_reply_send(conversation=conversation, text="Second reply.")

    # when the browser reconnects with Last-Event-ID = the first reply
    response = open_events(client, conversation_id, HTTP_LAST_EVENT_ID=str(first.pk))
    events = read_while(response, lambda: None, until="message")

    # then only the second one is sent
    assert [e["data"]["text"] for e in events if e["event"] == "message"] == ["Second reply."]


def test_a_stream_opened_after_the_handoff_notice_replays_replies_sent_before_it_opened(client, widget_key):
    from chat.staff_replies import staff_reply_send

    # given a reply sent while the widget was closed (between the hand-off notice and the stream)
    conversation_id, notice_id = handed_off_conversation(client, widget_key)
    staff_reply_send(conversation=Conversation.objects.get(public_id=conversation_id), text="Are you there?")

    # when the widget opens the stream after the last message it showed
    response = client.get(f"/api/v1/chat/conversations/{conversation_id}/events?after={notice_id}",
                          HTTP_ORIGIN=ORIGIN)
    events = read_while(response, lambda: None, until="message")

    # then the reply is delivered
    assert [e["data"]["text"] for e in events if e["event"] == "message"] == ["Are you there?"]


def test_closing_the_conversation_ends_the_stream_with_a_status_event(client, widget_key, staff):
    conversation_id, _ = handed_off_conversation(client, widget_key)
    response = open_events(client, conversation_id)

    def close():
        assert staff.post(f"/staff/conversations/{conversation_id}/close").status_code == 302

    events = read_while(response, close, until="status")

    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "closed"


@pytest.mark.parametrize("path_id, origin, headers, status, code", [
    ("nope", ORIGIN, {}, 404, "conversation_not_found"),
    (None, "https://evil.example.net", {}, 403, "origin_not_allowed"),
    (None, ORIGIN, {"HTTP_LAST_EVENT_ID": "not-an-id"}, 400, "invalid_event_id"),
])
def test_bad_live_stream_requests_get_a_json_error(client, widget_key, path_id, origin, headers, status, code):
    conversation_id, _ = handed_off_conversation(client, widget_key)
    response = client.get(f"/api/v1/chat/conversations/{path_id or conversation_id}/events", HTTP_ORIGIN=origin,
                          **headers)
    assert response.status_code == status and response.json()["error"]["code"] == code
