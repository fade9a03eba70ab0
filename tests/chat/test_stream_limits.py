"""A public widget must not be knocked over: body caps, rate limits before work, caps on open streams."""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from prometheus_client import REGISTRY

from chat.models import Message
from tests.chat.test_live import handed_off_conversation, open_events
from tests.chat.test_views import ORIGIN, ask, post


def rejected(code: str) -> float:
    return REGISTRY.get_sample_value("kefu_chat_requests_rejected_total", {"code": code}) or 0.0


def drain(response) -> None:
    """Read a streaming response to its end (its generator finishes and gives its slot back)."""
    async def read():
        async for _ in response.streaming_content:
            pass
    async_to_sync(read)()


def test_a_body_over_the_cap_is_refused_before_it_is_parsed(client, widget_key, settings, isolated_cache):
    settings.KEFU_CHAT_MAX_BODY_BYTES = 64 * 1024
    before = rejected("body_too_large")
    # given a 200 KB question
    body = json.dumps({"text": "permit " * 30_000})
    # when it is posted
    response = post(client, "/api/v1/chat/messages", body, key=widget_key.public_key)
    # then it is refused with 413 and a JSON error, counted, and nothing is stored
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert rejected("body_too_large") == before + 1
    assert not Message.objects.exists()


def test_the_rate_limit_is_checked_before_the_body_is_read(client, widget_key, settings, isolated_cache,
                                                         fake_generator):
    settings.KEFU_CHAT_RATE_LIMITS = {"key": (100, 60), "ip": (1, 60), "conversation": (100, 60)}
    assert ask(client, widget_key, "What are your opening hours?").status_code == 202
    # when the same client then sends a body that is not even JSON
    response = post(client, "/api/v1/chat/messages", "{not json", key=widget_key.public_key)
    # then it is the rate limit that answers: the body was never parsed
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"


def test_reads_of_the_chat_api_are_rate_limited_per_client(client, widget_key, settings, isolated_cache,
                                                          fake_generator):
    settings.KEFU_CHAT_READ_RATE_LIMIT = (3, 60)
    conversation = ask(client, widget_key, "What are your opening hours?").json()["conversation_id"]

    def history():
        return client.get(f"/api/v1/chat/conversations/{conversation}", HTTP_X_KEFU_KEY=widget_key.public_key,
                          HTTP_ORIGIN=ORIGIN)

    # when one client reads the conversation four times in a minute
    statuses = [history().status_code for _ in range(4)]
    # then the fourth read is refused with Retry-After
    assert statuses == [200, 200, 200, 429]
    assert int(history()["Retry-After"]) >= 1


def test_a_client_holds_at_most_its_cap_of_open_streams(client, widget_key, settings, isolated_cache):
    settings.KEFU_CHAT_STREAMS_PER_IP = 2
    conversation, _ = handed_off_conversation(client, widget_key)
    # given two live streams this client keeps open
    first, second = open_events(client, conversation), open_events(client, conversation)
    assert (first.status_code, second.status_code) == (200, 200)
    # when it opens a third
    third = open_events(client, conversation)
    # then it is refused (429, a JSON error the widget's page may read), and counted
    assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_streams"
    assert third["Access-Control-Allow-Origin"] == ORIGIN
    assert REGISTRY.get_sample_value("kefu_chat_rate_limited_total", {"scope": "streams-ip"}) >= 1


def test_a_finished_stream_gives_its_slot_back(client, widget_key, settings, isolated_cache, fake_generator):
    settings.KEFU_CHAT_STREAMS_PER_IP = 1
    started = ask(client, widget_key, "What are your opening hours?")
    url = started.json()["stream_url"].replace("http://testserver", "")
    # given one stream read to its end
    drain(client.get(url, HTTP_ORIGIN=ORIGIN))
    # then the next one may open
    assert client.get(url, HTTP_ORIGIN=ORIGIN).status_code == 200


def test_a_conversation_holds_at_most_its_cap_of_live_streams(client, widget_key, settings, isolated_cache):
    settings.KEFU_CHAT_LIVE_STREAMS_PER_CONVERSATION = 1
    conversation, _ = handed_off_conversation(client, widget_key)
    other, _ = handed_off_conversation(client, widget_key)
    assert open_events(client, conversation).status_code == 200
    # when a second live stream opens on the same conversation, and one on another conversation
    again, elsewhere = open_events(client, conversation), open_events(client, other)
    # then only the same conversation's is refused
    assert again.status_code == 429 and elsewhere.status_code == 200
