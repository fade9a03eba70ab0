"""The chat API fuzzed from its own OpenAPI document (issue 16: 16): schemathesis draws requests for every
operation — valid ones and ones that break the schema (wrong types, missing or extra fields, odd bytes, odd
path ids) — and each is sent through Django's test client to the real views, database and cache (SQLite and
the in-process cache in embedded mode, PostgreSQL and Redis in service mode). No answer may be a 5xx, and
every error must be a JSON body ``{"error": {"code", "message"}}``.

Bounded: ``FUZZ_EXAMPLES`` requests in all (about 15 s on this machine; 800 took 25–40 s in either mode). Some requests carry the ids of a
real answered message and conversation, so the stream, feedback, history and hand-off paths are reached
past their 404s; the live-events stream only ever gets ids that do not exist (a real one stays open).
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET

from chat import services
from chat.openapi import openapi_document

FUZZ_EXAMPLES = 150
ORIGIN = "https://shop.example.com"
PREFIX = "/api/v1/chat"
SCHEMA = schemathesis.openapi.from_dict(openapi_document("http://testserver/"))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
REAL_IDS_FOR = {"message_id", "conversation_id"}
NEVER_REAL = {"GET /conversations/{conversation_id}/events"}  # a real, handed-off conversation's stream stays open


def test_the_served_document_is_the_one_fuzzed(client, db):
    # the fuzzed operations are those of the document the API serves
    served = client.get(f"{PREFIX}/schema").json()
    assert set(served["paths"]) == {operation.path for operation in OPERATIONS}


def case_strategy(real_ids: dict[str, str]):
    """An operation, a generation mode, and a case of it — with real path ids now and then."""

    def cases(operation):
        modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
        generated = modes.flatmap(operation.as_strategy)
        names = {p.name for p in operation.path_parameters} & REAL_IDS_FOR
        if not names or operation.label in NEVER_REAL:
            return generated
        real = operation.as_strategy(GenerationMode.POSITIVE, path_parameters={n: real_ids[n] for n in names})
        return st.one_of(generated, real)

    return st.sampled_from(OPERATIONS).flatmap(cases)


def request_of(case, *, key: str | None) -> dict:
    """The Django test client's keyword arguments for one case (the widget key and origin set when given)."""
    path = PREFIX + case.operation.path.format(
        **{name: quote(str(value), safe="") for name, value in (case.path_parameters or {}).items()})
    if case.query:
        path += "?" + urlencode(case.query, doseq=True)
    headers = {str(name): str(value) for name, value in (case.headers or {}).items()}
    if key is not None:
        headers.update({"X-Kefu-Key": key, "Origin": ORIGIN})
    request = {"method": case.method.upper(), "path": path, "headers": headers}
    if case.body is not NOT_SET:
        body = case.body if isinstance(case.body, bytes) else json.dumps(case.body)
        request.update(data=body, content_type=case.media_type or "application/json")
    return request


def assert_no_server_error_and_json_errors(response, request: dict) -> None:
    assert response.status_code < 500, (response.status_code, request)
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), (response["Content-Type"], request)
        error = json.loads(response.content)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), request
    if response.streaming:
        drained(response)  # an SSE answer must end (a final message's stream does)


def drained(response) -> bytes:
    if not response.is_async:
        return b"".join(response.streaming_content)

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


@pytest.fixture
def real_ids(widget_key, fake_generator, settings) -> dict[str, str]:
    settings.KEFU_CHAT_RATE_LIMITS = {"key": (100_000, 60), "ip": (100_000, 60), "conversation": (100_000, 60)}
    settings.KEFU_HANDOFF_RATE_LIMITS = {"ip": (100_000, 60), "conversation": (100_000, 60)}
    started = services.message_answer(widget_key=widget_key, conversation=None, text="What are your opening hours?")
    return {"message_id": started.message_id, "conversation_id": started.conversation_id}


def test_no_request_the_schema_allows_or_breaks_gets_a_5xx_or_a_non_json_error(client, widget_key, real_ids):
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=case_strategy(real_ids), keyed=st.sampled_from([True, True, True, False]))
    def fuzz(case, keyed):
        # given a request drawn from the document (with the site's key and origin, or as generated)
        request = request_of(case, key=widget_key.public_key if keyed else None)
        # when it is sent
        response = client.generic(request.pop("method"), request.pop("path"), **request)
        # then it is no server error, and an error says what in JSON
        assert_no_server_error_and_json_errors(response, request)

    fuzz()


def test_a_conversation_id_with_a_nul_byte_is_a_4xx_json_error(client, widget_key, real_ids):
    # given a message posted to a conversation id holding a NUL byte (PostgreSQL refuses it in a query; the fuzz
    # above found it)
    request = {"method": "POST", "path": PREFIX + "/messages", "headers": {"X-Kefu-Key": widget_key.public_key,
                                                                        "Origin": ORIGIN},
               "data": json.dumps({"conversation_id": "\x00", "text": "Hello?"}),
               "content_type": "application/json"}
    # when it is sent
    response = client.generic(request["method"], request["path"], request["data"],
                              content_type=request["content_type"], headers=request["headers"])
    # then it is a client error with a JSON body, not a server error
    assert 400 <= response.status_code < 500
    assert_no_server_error_and_json_errors(response, request)
