"""Hand-off flood (issue 16, item 7): ``POST conversations/<id>/handoff`` is rate-limited, idempotent once the
conversation is handed off (a repeat gets the existing notice and stores nothing), and 409 on a closed one."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from tests.reliability.conftest import ORIGIN, api_post


@pytest.fixture
def shop_key(db):
    from chat.models import WidgetKey
    from kb.services import knowledge_base_create

    kb = knowledge_base_create(name="Hand-off shop")
    return WidgetKey.objects.create(knowledge_base=kb, name="shop", allowed_origins=[ORIGIN])


def conversation_with_a_question(key, text: str = "Can I speak to someone about my invoice?"):
    from chat.models import Conversation, Message

    conversation = Conversation.objects.create(knowledge_base=key.knowledge_base, widget_key=key)
    Message.objects.create(conversation=conversation, role=Message.Role.USER, text=text)
    return conversation


def handoff(client, key, conversation_id: str, *, ip: str = "198.51.100.7"):
    return api_post(client, f"/api/v1/chat/conversations/{conversation_id}/handoff", {}, key=key.public_key,
                    REMOTE_ADDR=ip)


def notices(conversation) -> int:
    return conversation.messages.filter(role="assistant", outcome="handed_off").count()


def test_twenty_handoff_requests_store_one_notice(client, shop_key):
    # given a conversation with one question
    conversation = conversation_with_a_question(shop_key)
    # when the visitor's page sends 20 hand-off requests
    responses = [handoff(client, shop_key, conversation.public_id) for _ in range(20)]
    # then the first hands off, every later one gets the same notice back or a 429 with Retry-After
    assert responses[0].status_code == 202
    notice_id = responses[0].json()["message_id"]
    assert {r.json()["message_id"] for r in responses if r.status_code == 202} == {notice_id}
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all(r.json()["error"]["code"] == "rate_limited" and int(r["Retry-After"]) >= 1
                           for r in limited)
    # and exactly one notice was stored: the question and the notice, not 22 messages
    conversation.refresh_from_db()
    assert conversation.status == "handed_off" and notices(conversation) == 1
    assert conversation.messages.count() == 2


def test_a_repeat_after_the_hand_off_returns_the_existing_notice(client, shop_key, settings):
    # given no rate limit in the way, and a conversation already handed off by the customer
    settings.KEFU_HANDOFF_RATE_LIMITS = {"ip": (1000, 60), "conversation": (1000, 60)}
    conversation = conversation_with_a_question(shop_key)
    first = handoff(client, shop_key, conversation.public_id).json()
    # when the button is pressed five more times
    repeats = [handoff(client, shop_key, conversation.public_id) for _ in range(5)]
    # then each is answered with the notice already stored, which the widget can stream again
    assert all(r.status_code == 202 and r.json()["message_id"] == first["message_id"] for r in repeats)
    assert all(r.json()["outcome"] == "handed_off" for r in repeats)
    stream = client.get(repeats[-1].json()["stream_url"].replace("http://testserver", ""), HTTP_ORIGIN=ORIGIN)
    assert stream.status_code == 200
    # and nothing more was stored
    assert notices(conversation) == 1 and conversation.messages.count() == 2


def test_a_conversation_the_pipeline_handed_off_answers_with_that_notice(client, shop_key):
    from chat.models import Conversation, Message

    # given a conversation the answer pipeline already handed off (its "I'll get a person" reply stored)
    conversation = conversation_with_a_question(shop_key)
    Conversation.objects.filter(pk=conversation.pk).update(status="handed_off")
    automatic = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, text="A person will reply.",
                                       outcome="handed_off", reason="no_answer")
    # when the customer also presses the button / then that notice is returned, nothing stored
    response = handoff(client, shop_key, conversation.public_id)
    assert response.status_code == 202 and response.json()["message_id"] == str(automatic.pk)
    assert conversation.messages.count() == 2


def test_handoff_requests_are_rate_limited_per_ip(client, shop_key, settings):
    # given a per-IP limit of 4 a minute
    settings.KEFU_HANDOFF_RATE_LIMITS = {"ip": (4, 60), "conversation": (1000, 60)}
    conversations = [conversation_with_a_question(shop_key) for _ in range(6)]
    # when one address hands off six conversations
    statuses = [handoff(client, shop_key, c.public_id, ip="203.0.113.50").status_code for c in conversations]
    # then four are handed off and the rest refused; another address is still served
    assert statuses == [202] * 4 + [429] * 2
    assert sum(notices(c) for c in conversations) == 4
    assert handoff(client, shop_key, conversations[-1].public_id, ip="203.0.113.51").status_code == 202


def test_a_closed_conversation_gets_409_and_nothing_is_stored(client, shop_key):
    from chat.models import Conversation

    # given a conversation staff closed
    conversation = conversation_with_a_question(shop_key)
    Conversation.objects.filter(pk=conversation.pk).update(status="closed")
    # when the visitor asks for a person
    response = handoff(client, shop_key, conversation.public_id)
    # then 409 as for messages, and the conversation is unchanged
    assert response.status_code == 409 and response.json()["error"]["code"] == "conversation_closed"
    conversation.refresh_from_db()
    assert conversation.status == "closed" and conversation.messages.count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL (service mode)")
def test_concurrent_handoff_requests_store_one_notice(transactional_db):
    from django.db import connections

    from chat.models import WidgetKey
    from chat.services import handoff_request
    from kb.services import knowledge_base_create

    # given a conversation, and ten requests handing it off at the same moment
    kb = knowledge_base_create(name="Concurrent hand-off")
    key = WidgetKey.objects.create(knowledge_base=kb, name="shop", allowed_origins=[ORIGIN])
    conversation = conversation_with_a_question(key)
    barrier, started = threading.Barrier(10), []

    def press():
        from chat.models import Conversation

        try:
            mine = Conversation.objects.get(pk=conversation.pk)
            barrier.wait(timeout=10)
            started.append(handoff_request(conversation=mine).message_id)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then all ten got the same notice, stored once
    assert len(started) == 10 and len(set(started)) == 1
    assert notices(conversation) == 1
