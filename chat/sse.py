"""The SSE relay of one assistant message: ``token`` events, then ``done`` or ``error``.

A reply known at once (cached, direct, refused, handed off) is one ``done`` event. A
generated reply relays the inference job's token stream through the reply filter
(:mod:`chat.pipeline.reply_filter`: sensitive words masked, echoed passage headers dropped, the
head held back until the output gate passes it; a held token goes out empty). Every token event
carries the job stream's event id, and a reader that reconnects with ``Last-Event-ID`` resumes
after it without duplicates (the filter's state is rebuilt by replaying the events up to that
id). When the job's final event arrives the message is finalised through the same filter, so
``done`` carries exactly the streamed text (plus citation marks), its citations and timings —
or Kefu's refusal when the gate rejected the reply, which the widget shows in place of what
was streamed. A comment line goes out every ``KEFU_CHAT_HEARTBEAT_S`` seconds so proxies keep
the connection open.

The event text is formatted by :mod:`chat.sse_events`; readers are counted, and an unread
generation cancelled, by :mod:`chat.stream_readers`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings

from chat import generation, services
from chat.api import redis_unavailable_errors, unavailable_errors
from chat.db_slots import db_call
from chat.models import Message
from chat.pipeline.reply_filter import ReplyFilter
from chat.sse_events import (
    FINAL_ID,
    done_payload,
    final_events,
    final_events_with_id,
    retry_line,
    sse_event,
    unavailable_event,
)
from chat.stream_readers import CANCEL_GRACE_S, reader_join, reader_leave, schedule_cancel
from inference.outcomes import GenerationError
from inference.stream import START, parse_id

# What chat.views sends besides the relay: the event text of a reply known at once, and the 204 check.
__all__ = ["already_delivered", "done_payload", "message_events", "sse_event"]

log = logging.getLogger(__name__)
READ_BLOCK_MS = 1000


def unavailable_final_event(message: Message, exc: BaseException) -> str:
    """The closing event when Redis went away mid-stream: the message fails cleanly.

    The customer gets an ``error`` they can act on instead of a cut connection, and the message is
    stored failed (code ``service_unavailable``) so it is never left pending.
    """
    log.warning("stream of message %s broken by an unavailable service: %s", message.pk, exc)
    outcome = GenerationError("service_unavailable", str(exc))
    try:
        return final_events(services.message_finalize(message=message, event=outcome))
    except unavailable_errors():
        return unavailable_event()


def replay_filter(job_id: str, reply_filter: ReplyFilter, last_event_id: str) -> None:
    """Feed the filter every token up to ``last_event_id`` (already delivered) so what it holds is right."""
    cursor, target = START, parse_id(last_event_id)
    while True:
        events = generation.stream_read(job_id, after=cursor, block_ms=0)
        for event in events:
            if parse_id(event.id) > target:
                return
            if event.kind == "token":
                reply_filter.feed(event.data.get("text", ""))
        if not events:
            return
        cursor = events[-1].id


def already_delivered(message: Message, last_event_id: str | None) -> bool:
    """A finished message whose final event this reader has seen: nothing more to send (HTTP 204)."""
    if not last_event_id or not message.is_final:
        return False
    if last_event_id == FINAL_ID:
        return True
    if not message.inference_job_id or valid_event_id(last_event_id) is None:
        return False
    rest = generation.stream_read(message.inference_job_id, after=last_event_id, block_ms=0)
    history = rest or generation.stream_read(message.inference_job_id, after="0-0", block_ms=0)
    # Nothing after the reader's id while the stream still exists: it saw the final event.
    return not rest and bool(history)


def valid_event_id(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parse_id(value)
    except ValueError:
        return None
    return value


async def message_events(message: Message, *, last_event_id: str | None = None, grace_s: float = CANCEL_GRACE_S):
    """The SSE text of one message, from ``last_event_id`` on."""
    yield retry_line()
    if message.is_final or not message.inference_job_id:
        yield final_events(message)
        return
    finished = False
    try:
        await sync_to_async(reader_join)(message.pk)
        async for chunk in relay_generation(message, last_event_id=valid_event_id(last_event_id)):
            yield chunk
        finished = True
    except redis_unavailable_errors() as exc:
        # Only Redis: a database error mid-stream leaves the message pending, to be reconciled from its job.
        yield await db_call(unavailable_final_event)(message, exc)
        finished = True
    finally:
        left = await sync_to_async(reader_leave)(message.pk)
        if left <= 0 and not finished:
            # The reader went away mid-answer (client disconnect): cancel unless someone else reads.
            await db_call(schedule_cancel)(message.pk, grace_s)


async def relay_generation(message: Message, *, last_event_id: str | None):
    reply_filter = await db_call(services.stream_filter_for)(message)
    cursor = last_event_id or START
    if last_event_id:
        await sync_to_async(replay_filter, thread_sensitive=False)(message.inference_job_id, reply_filter,
                                                                   last_event_id)
    deadline = time.monotonic() + settings.KEFU_GENERATION_TIMEOUT + 30
    last_sent = time.monotonic()
    first_token_seen = bool(last_event_id)
    # Each token event goes out when the next event arrives (one token late): what the filter held back — the
    # masker's tail, a line that may be an echoed header, the gate's head — is known by then, and whatever the
    # filter lets out at the very end rides on the last token. Every token id goes out once, in order (empty
    # when it showed nothing yet), so a reader resumes with Last-Event-ID as before, and the texts add up to
    # exactly the stored answer.
    unsent = None  # (id, text) of the latest token, not yet relayed
    while time.monotonic() < deadline:
        events = await sync_to_async(generation.stream_read, thread_sensitive=False)(
            message.inference_job_id, after=cursor, block_ms=READ_BLOCK_MS)
        for event in events:
            cursor = event.id
            if event.kind == "token":
                text = reply_filter.feed(event.data.get("text", ""))
                if unsent is not None:
                    first_token_seen = await first_token_note(message, unsent[1], first_token_seen)
                    yield sse_event("token", {"text": unsent[1]}, unsent[0])
                    last_sent = time.monotonic()
                unsent = (event.id, text)
                continue
            tail = reply_filter.flush()
            if unsent is not None:
                first_token_seen = await first_token_note(message, unsent[1] + tail, first_token_seen)
                yield sse_event("token", {"text": unsent[1] + tail}, unsent[0])
            finished = await db_call(services.message_finalize)(message=message, event=event)
            yield final_events_with_id(finished, event.id)
            return
        if time.monotonic() - last_sent >= settings.KEFU_CHAT_HEARTBEAT_S:
            yield ": heartbeat\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(0)
    timeout = GenerationError("timeout", "no answer in time")
    finished = await db_call(services.message_finalize)(message=message, event=timeout)
    yield final_events_with_id(finished, FINAL_ID)


async def first_token_note(message: Message, text: str, seen: bool) -> bool:
    """Record the POST-to-first-token time when the first visible text goes out; whether it has."""
    if seen or not text:
        return seen
    await db_call(services.message_first_token)(message=message)
    return True
