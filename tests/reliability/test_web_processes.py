"""Several web processes: a reply streamed by one, resumed on another, and live staff replies on a third request.

Two uvicorn processes on two ports (as two pods behind a load balancer, or ``uvicorn --workers 2``
behind one socket) share nothing but PostgreSQL and Redis. A customer's requests land on either: the
POST on one, the stream on the other, the reconnect on the first again. Real processes, the real
model (answers capped at a few tokens); no timing is asserted.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bench import load_core
from tests.reliability.test_load_small import SERVICE_MODE, load_stack_config

pytestmark = [
    pytest.mark.slow, pytest.mark.service, pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not SERVICE_MODE, reason="service mode only: set REDIS_URL and a PostgreSQL DATABASE_URL"),
]
HEADERS = {"Origin": load_core.ORIGIN}


async def read_events(client, url: str, *, headers: dict, stop_after_tokens: int | None = None) -> list[tuple]:
    """(id, event, data) of a stream until its final event, or until ``stop_after_tokens`` tokens (then leave)."""
    events = []
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, response.status_code
        async for event_id, kind, data in load_core.sse_events(response.aiter_lines()):
            events.append((event_id, kind, json.loads(data) if data else {}))
            tokens = sum(1 for e in events if e[1] == "token")
            if kind in ("done", "error") or (stop_after_tokens is not None and tokens >= stop_after_tokens):
                return events
    return events


def other(base: str, web_a: str, web_b: str) -> str:
    return web_b if base == web_a else web_a


def test_a_stream_resumes_on_another_web_process_and_live_events_cross_too(settings, redis_url, embedder, tmp_path):
    import httpx

    from chat.models import Conversation, Message
    from chat.staff_replies import staff_reply_send

    # given a base, both workers and TWO web processes on the test database
    rows = load_core.faq_rows(30)
    kb = load_core.faq_base_build(rows=rows)
    key = load_core.widget_key_create(kb)
    pools = load_core.question_pools(rows, warm=0, knowledge=1)
    config = load_stack_config(settings, redis_url, tmp_path, answer_tokens=12, inference_threads=2)
    with load_core.Stack(config) as stack:
        web_a = stack.base
        web_b = stack.web_add()

        async def scenario():
            async with httpx.AsyncClient(timeout=300) as client:
                # when a knowledge question is POSTed to process A and its stream read from process B,
                # which the customer leaves after two tokens and resumes on process A
                posted = await client.post(web_a + "/api/v1/chat/messages", json={"text": pools.knowledge[0]},
                                           headers={"X-Kefu-Key": key, **HEADERS})
                body = posted.json()
                path = body["stream_url"].split("/api/", 1)[1]
                first = await read_events(client, f"{web_b}/api/{path}", headers=HEADERS, stop_after_tokens=2)
                last_id = [e for e in first if e[0]][-1][0]
                rest = await read_events(client, f"{web_a}/api/{path}", headers={**HEADERS, "Last-Event-ID": last_id})
                # and the customer then asks for a person on A and listens for staff replies on B
                conversation = body["conversation_id"]
                handed = await client.post(f"{web_a}/api/v1/chat/conversations/{conversation}/handoff",
                                           headers={"X-Kefu-Key": key, **HEADERS})
                listener = asyncio.create_task(read_live(client, f"{web_b}/api/v1/chat/conversations/"
                                                                 f"{conversation}/events"))
                await asyncio.sleep(2)  # the listener is open before the reply is sent
                await asyncio.to_thread(send_staff_reply, conversation)
                live = await asyncio.wait_for(listener, 60)
                return body, first, rest, handed, live

        def send_staff_reply(conversation_id: str) -> None:
            staff_reply_send(conversation=Conversation.objects.get(public_id=conversation_id),
                             text="A person here: yes, you need a permit.")

        async def read_live(client, url: str):
            async with client.stream("GET", url, headers=HEADERS) as response:
                async for event_id, kind, data in load_core.sse_events(response.aiter_lines()):
                    if kind == "message":
                        return event_id, json.loads(data)
            return None

        body, first, rest, handed, live = asyncio.run(scenario())
    # then the two halves of the stream join without a gap or a repeat, and end on what is stored
    tokens = [e for e in first + rest if e[1] == "token"]
    ids = [e[0] for e in tokens]
    assert len(ids) == len(set(ids)) and ids == sorted(ids, key=load_core.parse_event_id)
    final = rest[-1]
    stored = Message.objects.get(pk=body["message_id"])
    assert final[1] in ("done", "error"), rest
    if final[1] == "done":  # (an error event only on a machine too slow for the generation time limit)
        assert final[2]["answer"] == stored.text and final[2]["outcome"] == stored.outcome
        assert ids == load_core.job_token_ids(stored.inference_job_id)
        if stored.outcome == "answered":  # attribution may add [n] marks after the stream
            assert load_core.without_marks("".join(e[2]["text"] for e in tokens)) == load_core.without_marks(stored.text)
    # and the hand-off on A and the staff reply reached the listener on B
    assert handed.status_code == 202
    assert live is not None and live[1]["text"] == "A person here: yes, you need a permit."


def test_three_hundred_live_streams_of_one_client_leave_the_others_answered(settings, redis_url, embedder,
                                                                            tmp_path):
    import httpx

    # given a base, its workers and one web process on the test database (PostgreSQL), with the default caps
    rows = load_core.faq_rows(20)
    kb = load_core.faq_base_build(rows=rows)
    key = load_core.widget_key_create(kb)
    config = load_stack_config(settings, redis_url, tmp_path, answer_tokens=4, inference_threads=2)
    with load_core.Stack(config) as stack:
        async def scenario():
            limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                posted = await client.post(stack.base + "/api/v1/chat/messages", json={"text": "a person please"},
                                           headers={"X-Kefu-Key": key, **HEADERS})
                conversation = posted.json()["conversation_id"]
                url = f"{stack.base}/api/v1/chat/conversations/{conversation}/events"
                # when one client opens 300 live-event streams of that conversation and holds them
                opened = [asyncio.create_task(hold_stream(client, url)) for _ in range(300)]
                await flood_answered(opened, 300 - settings.KEFU_CHAT_STREAMS_PER_IP)
                # while 20 other customers ask FAQ questions
                asks = [client.post(stack.base + "/api/v1/chat/messages", json={"text": row["q"]},
                                    headers={"X-Kefu-Key": key, **HEADERS}) for row in rows]
                answered = await asyncio.gather(*asks)
                for task in opened:
                    task.cancel()
                statuses = await asyncio.gather(*opened, return_exceptions=True)
                return answered, [s for s in statuses if isinstance(s, int)]

        async def flood_answered(opened: list, at_least: int, timeout_s: float = 60.0) -> None:
            """Until the web process has answered ``at_least`` of the flood's requests (a slow or busy machine
            takes more than a few seconds for 300), or the timeout."""
            deadline = asyncio.get_running_loop().time() + timeout_s
            while sum(task.done() for task in opened) < at_least and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)

        async def hold_stream(client, url: str) -> int:
            async with client.stream("GET", url, headers=HEADERS) as response:
                if response.status_code != 200:
                    return response.status_code
                await asyncio.sleep(60)  # held open until cancelled
                return 200

        answered, refused = asyncio.run(scenario())
    # then every other customer was answered at once (a direct FAQ answer in the POST), none got a 503
    assert [r.status_code for r in answered] == [202] * len(rows)
    assert all(r.json()["outcome"] == "direct" and r.json()["done"]["answer"] for r in answered)
    # and the flood was refused beyond the per-client cap (30 open streams), with 429s, not served
    assert len(refused) >= 300 - settings.KEFU_CHAT_STREAMS_PER_IP and set(refused) == {429}
