"""The load generator's HTTP client (bench/load_http.py) against a real uvicorn app: what it reads is what was sent.

The bench's verdict (nothing lost, tokens whole) is only as strict as the client's parsing: bodies by length and
chunked, SSE lines split across chunks, keep-alive reuse, and a stream left unread never reused.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import uvicorn

from bench.load_core import run_client, sse_events
from bench.load_http import LeanClient
from tests.conftest import free_port

EVENTS = [("1-0", "token", {"text": "Hel"}), ("1-1", "token", {"text": "lo é 世界"}), ("1-2", "done", {"answer": "Hello"})]


async def app(scope, receive, send):
    """/json: a JSON body with a length; /sse: events in chunks that cut lines and characters apart; /peer: the
    client's port (one per connection)."""
    assert scope["type"] == "http"
    await receive()
    if scope["path"] == "/sse":
        body = "".join(f"id: {i}\nevent: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
                       for i, kind, data in EVENTS).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for start in range(0, len(body), 7):  # 7-byte pieces: lines and UTF-8 characters split across chunks
            await send({"type": "http.response.body", "body": body[start:start + 7], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    payload = {"path": scope["path"], "peer": scope["client"][1]}
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server_base():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_json_bodies_are_read_whole_and_the_connection_is_kept_alive(server_base):
    async def run():
        async with LeanClient(max_connections=1) as client:
            return [await client.post(f"{server_base}/json", json={"text": "hi"}) for _ in range(3)]

    responses = run_client(run())
    assert [r.status_code for r in responses] == [202, 202, 202]
    assert [r.json()["path"] for r in responses] == ["/json"] * 3
    # one connection served all three
    assert len({r.json()["peer"] for r in responses}) == 1


def test_sse_lines_split_across_chunks_come_out_whole(server_base):
    async def run():
        async with LeanClient(max_connections=1) as client:
            async with client.stream("GET", f"{server_base}/sse") as response:
                events = [event async for event in sse_events(response.aiter_lines())]
            after = await client.post(f"{server_base}/json", json={})
            return response.status_code, events, after

    status, events, after = run_client(run())
    assert status == 200
    assert [(i, kind, json.loads(data)) for i, kind, data in events] == EVENTS
    assert after.status_code == 202  # the stream was read to its end: its connection serves the next request


def test_a_stream_left_unread_is_not_reused(server_base):
    async def run():
        async with LeanClient(max_connections=1) as client:
            first = await client.post(f"{server_base}/json", json={})
            async with client.stream("GET", f"{server_base}/sse") as response:
                async for _line in response.aiter_lines():
                    break  # as the bench does after the final event
            second = await client.post(f"{server_base}/json", json={})
            return first.json()["peer"], second.json()["peer"]

    first_peer, second_peer = run_client(run())
    # the next request went over a new connection, never after the unread rest of the stream
    assert first_peer != second_peer


def test_many_requests_at_once_share_a_bounded_pool(server_base):
    async def run():
        async with LeanClient(max_connections=4) as client:
            return await asyncio.gather(*(client.post(f"{server_base}/json", json={"n": n}) for n in range(40)))

    responses = run_client(run())
    assert [r.status_code for r in responses] == [202] * 40
    assert len({r.json()["peer"] for r in responses}) <= 4
