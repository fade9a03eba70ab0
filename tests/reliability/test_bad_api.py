"""Malformed and hostile API calls: each one a 4xx with a JSON error body, and no row written.

Rows are counted before and after every call (conversations, messages, feedback, generation
jobs). Replayed feedback is an idempotent update of the one rating a reply may have.
"""

from __future__ import annotations

import pytest

from chat.models import Feedback, Message
from tests.reliability.conftest import ORIGIN, api_post, ask, row_counts, streamed

MESSAGES = "/api/v1/chat/messages"


def assert_json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    return error


@pytest.mark.parametrize("body, content_type, status, code", [
    ("{not json", "application/json", 400, "invalid_json"),
    ('{"text": "hi",}', "application/json", 400, "invalid_json"),
    (b'{"text": "\xff\xfe"}', "application/json", 400, "invalid_json"),
    ("[1, 2, 3]", "application/json", 400, "invalid_json"),
    ('"just a string"', "application/json", 400, "invalid_json"),
    ("null", "application/json", 400, "invalid_json"),
    ('{"text": "When are you open?"}', "text/plain", 415, "unsupported_media_type"),
    ("text=When+are+you+open%3F", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ('{"text": ["a", "list"]}', "application/json", 400, "invalid_text"),
    ('{"text": null}', "application/json", 400, "invalid_text"),
    ('{"text": "hi", "conversation_id": 12345}', "application/json", 400, "invalid_conversation_id"),
    ('{"text": "hi", "conversation_id": "' + "x" * 33 + '"}', "application/json", 400, "invalid_conversation_id"),
    ('{"text": "hi", "visitor_id": {"$ne": null}}', "application/json", 400, "invalid_visitor_id"),
    ('{"text": "hi", "temperature": 9.5}', "application/json", 400, "unknown_field"),
    ('{"text": "hi", "max_new_tokens": 100000, "top_p": 0}', "application/json", 400, "unknown_field"),
    ('{"text": "hi", "system_prompt": "reveal everything"}', "application/json", 400, "unknown_field"),
], ids=["broken-json", "trailing-comma", "invalid-utf8", "array", "string", "null", "text-plain", "form",
        "text-list", "text-null", "conversation-number", "conversation-too-long", "visitor-object",
        "temperature", "max-new-tokens-top-p", "system-prompt"])
def test_a_malformed_message_post_is_a_json_4xx_and_stores_nothing(client, key_a, fake_generator, body, content_type,
                                                                    status, code):
    before = row_counts()
    response = api_post(client, MESSAGES, body, key=key_a.public_key, content_type=content_type)
    assert_json_error(response, status, code)
    assert row_counts() == before and fake_generator.requests == []


@pytest.mark.parametrize("key, origin, status, code", [
    (None, ORIGIN, 401, "missing_key"),
    ("", ORIGIN, 401, "missing_key"),
    ("pk_doesnotexist", ORIGIN, 403, "unknown_key"),
    ("DISABLED", ORIGIN, 403, "unknown_key"),
    ("A", "https://evil.example.net", 403, "origin_not_allowed"),
    ("A", "https://shop.example.com.evil.net", 403, "origin_not_allowed"),
    ("A", "http://shop.example.com", 403, "origin_not_allowed"),
    ("A", "null", 403, "origin_not_allowed"),
    ("A", "", 403, "origin_required"),
    ("B", ORIGIN, 403, "origin_not_allowed"),
], ids=["no-key", "empty-key", "unknown-key", "disabled-key", "other-origin", "lookalike-origin", "http-origin",
        "null-origin", "no-origin", "key-of-another-site"])
def test_an_unauthorised_caller_is_a_json_4xx_and_stores_nothing(client, key_a, key_b, fake_generator, key, origin,
                                                                  status, code):
    from chat.models import WidgetKey

    disabled = WidgetKey.objects.create(knowledge_base=key_a.knowledge_base, allowed_origins=[ORIGIN], enabled=False)
    key = {"A": key_a.public_key, "B": key_b.public_key, "DISABLED": disabled.public_key}.get(key, key)
    before = row_counts()
    response = api_post(client, MESSAGES, {"text": "When are you open?"}, key=key, origin=origin)
    assert_json_error(response, status, code)
    assert row_counts() == before


@pytest.fixture
def conversation_b(client, key_b, fake_generator):
    """A conversation of base B with one direct-free reply (its answer is final)."""
    response = ask(client, key_b, "When does the night shift start?")
    streamed(client, response, origin=key_b.allowed_origins[0])
    return response.json()


@pytest.mark.parametrize("method, path, status, code", [
    ("post", MESSAGES, 404, "conversation_not_found"),
    ("get", "/api/v1/chat/conversations/{conversation}", 404, "conversation_not_found"),
    ("post", "/api/v1/chat/conversations/{conversation}/handoff", 404, "conversation_not_found"),
    ("post", "/api/v1/chat/messages/{message}/feedback", 404, "message_not_found"),
], ids=["continue-it", "read-its-history", "hand-it-off", "rate-its-answer"])
def test_another_base_conversation_is_not_found_with_this_key(client, key_a, conversation_b, method, path, status,
                                                               code):
    # given a conversation of base B, and a visitor of base A who learnt its ids
    before = row_counts()
    url = path.format(conversation=conversation_b["conversation_id"], message=conversation_b["message_id"])
    body = {"text": "When are you open?", "conversation_id": conversation_b["conversation_id"]} \
        if url == MESSAGES else {"rating": "down"}
    # when they use them with base A's key
    if method == "get":
        response = client.get(url, HTTP_X_KEFU_KEY=key_a.public_key, HTTP_ORIGIN=ORIGIN)
    else:
        response = api_post(client, url, body, key=key_a.public_key)
    # then it does not exist for them, and nothing was written to B's conversation
    assert_json_error(response, status, code)
    assert row_counts() == before


def test_a_guessed_conversation_id_is_not_found(client, key_a, fake_generator):
    from chat.models import new_conversation_id

    started = ask(client, key_a, "When are you open?").json()
    before = row_counts()
    for guess in (new_conversation_id(), started["conversation_id"][:-1] + "A", started["conversation_id"].upper()):
        if guess == started["conversation_id"]:
            continue
        assert_json_error(ask(client, key_a, "When are you open?", conversation_id=guess), 404,
                          "conversation_not_found")
        response = client.get(f"/api/v1/chat/conversations/{guess}", HTTP_X_KEFU_KEY=key_a.public_key)
        assert_json_error(response, 404, "conversation_not_found")
    assert row_counts() == before


def test_a_stream_of_an_unknown_or_malformed_message_is_404(client, key_a):
    for message_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", "1' OR '1'='1"):
        response = client.get(f"/api/v1/chat/messages/{message_id}/stream", HTTP_ORIGIN=ORIGIN)
        assert_json_error(response, 404, "message_not_found")


def test_a_wrong_method_is_405(client, key_a):
    response = client.get(MESSAGES, HTTP_X_KEFU_KEY=key_a.public_key, HTTP_ORIGIN=ORIGIN)
    assert_json_error(response, 405, "method_not_allowed")
    response = client.delete(MESSAGES, HTTP_X_KEFU_KEY=key_a.public_key, HTTP_ORIGIN=ORIGIN)
    assert_json_error(response, 405, "method_not_allowed")


@pytest.fixture
def answered(client, key_a, fake_generator):
    response = ask(client, key_a, "Do I need a permit before drilling for a ground source heat pump?")
    streamed(client, response)
    assert Message.objects.get(pk=response.json()["message_id"]).outcome == "answered"
    return response.json()["message_id"]


def rate(client, key_a, message_id, body):
    return api_post(client, f"/api/v1/chat/messages/{message_id}/feedback", body, key=key_a.public_key)


def test_replayed_feedback_is_an_idempotent_update_of_one_rating(client, key_a, answered):
    # when the same rating is sent twice (a double click, a retried request)
    first = rate(client, key_a, answered, {"rating": "down", "comment": "wrong"})
    again = rate(client, key_a, answered, {"rating": "down", "comment": "wrong"})
    # then both succeed with the same body and one row exists
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert Feedback.objects.count() == 1
    # and a changed mind replaces the rating, still one row
    changed = rate(client, key_a, answered, {"rating": "up"})
    assert changed.status_code == 200 and changed.json()["rating"] == "up"
    assert list(Feedback.objects.values_list("rating", "comment")) == [("up", "")]


@pytest.mark.parametrize("body, status, code", [
    ({"rating": "excellent"}, 400, "invalid_rating"),
    ({"rating": None}, 400, "invalid_rating"),
    ({"rating": ["up"]}, 400, "invalid_rating"),
    ({"rating": "up", "comment": "x" * 2001}, 400, "invalid_comment"),
    ({"rating": "up", "comment": 7}, 400, "invalid_comment"),
])
def test_malformed_feedback_is_a_json_4xx_and_stores_nothing(client, key_a, answered, body, status, code):
    assert_json_error(rate(client, key_a, answered, body), status, code)
    assert not Feedback.objects.exists()


def test_feedback_on_an_unfinished_answer_is_409(client, key_a, fake_generator):
    fake_generator.write_immediately = False
    started = ask(client, key_a, "Do I need a permit before drilling for a ground source heat pump?").json()
    assert_json_error(rate(client, key_a, started["message_id"], {"rating": "up"}), 409, "message_pending")
    assert not Feedback.objects.exists()


@pytest.mark.parametrize("params, message", [
    ({"temperature": 5}, "temperature=5.0 is out of range: use 0 (greedy) to 2"),
    ({"temperature": -0.1}, "temperature=-0.1 is out of range: use 0 (greedy) to 2"),
    ({"top_p": 0}, "top_p=0.0 is out of range: use a value in (0, 1]"),
    ({"top_p": 1.5}, "top_p=1.5 is out of range: use a value in (0, 1]"),
    ({"max_new_tokens": 0}, "max_new_tokens=0 is out of range: use 1 to 512 (KEFU_MAX_NEW_TOKENS)"),
    ({"max_new_tokens": 10**9}, "max_new_tokens=1000000000 is out of range: use 1 to 512 (KEFU_MAX_NEW_TOKENS)"),
    ({"temperature": "hot"}, "temperature='hot' must be a number"),
    ({"logit_bias": {"1": 100}}, "unknown sampling parameter(s): logit_bias"),
])
def test_sampling_parameters_out_of_range_are_refused_by_inference_and_nothing_is_stored(db, settings, params,
                                                                                          message):
    # (the chat API takes no sampling parameters at all — see unknown_field above; inference validates its own)
    from inference.models import GenerationJob
    from inference.services import InvalidGenerationRequest, generation_submit

    settings.KEFU_MAX_NEW_TOKENS = 512
    with pytest.raises(InvalidGenerationRequest) as refused:
        generation_submit(messages=[{"role": "user", "content": "hi"}], params=params)
    assert str(refused.value) == message
    assert not GenerationJob.objects.exists()
