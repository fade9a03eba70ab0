"""Live events of one conversation: staff replies pushed to an open widget without a reload.

A handed-off conversation is answered by a person from the staff inbox
(:mod:`chat.staff_replies`). The widget keeps ``GET /api/v1/chat/conversations/<id>/events``
open (SSE) while its conversation is handed off, and each staff reply arrives there as a
``message`` event (the same JSON as the history's messages); closing the conversation sends
``status``. Event ids are message ids, so a reconnecting ``EventSource`` (``Last-Event-ID``)
gets what was added after the last message it saw, without duplicates.

Waking the stream: a write bumps the conversation's version in the Django cache (local memory
in embedded mode, Redis in service mode, so any web process sees it); the stream checks that
number every ``POLL_S`` and reads the database only when it changed — plus once every
``BACKSTOP_S``, so a missed bump (an evicted key, another embedded process) only delays a reply.
A stream ends after ``MAX_OPEN_S``; the browser reconnects by itself and resumes.
"""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from chat.db_slots import db_call
from chat.models import Conversation, Message

STAFF_REPLY_REASON = "staff_reply"  # the reason of a staff reply (chat.staff_replies): what a live stream pushes
POLL_S = 0.5
BACKSTOP_S = 10.0
MAX_OPEN_S = 300.0


def version_key(public_id: str) -> str:
    return f"chat:conversation-version:{public_id}"


def conversation_touch(*, public_id: str) -> None:
    """Tell the conversation's live streams that something changed (after the write commits)."""
    def bump():
        key = version_key(public_id)
        if not cache.add(key, 1, timeout=24 * 3600):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=24 * 3600)

    transaction.on_commit(bump)


def conversation_version(public_id: str) -> int:
    return cache.get(version_key(public_id)) or 0


def pushed_messages(conversation: Conversation, *, after_id: str | None) -> list[Message]:
    """Staff replies of the conversation after the message ``after_id`` (all of them when it is None)."""
    replies = conversation.messages.filter(role=Message.Role.ASSISTANT, reason=STAFF_REPLY_REASON)
    if after_id:
        anchor = Message.objects.filter(pk=after_id, conversation=conversation).values_list("created_at", flat=True)
        created = anchor.first()
        if created is not None:
            replies = replies.filter(created_at__gt=created)
    return list(replies.select_related("feedback").order_by("created_at", "pk"))


def pushed_payloads(conversation: Conversation, *, after_id: str | None, message_json) -> list[tuple[str, dict]]:
    """(event id, message JSON) of each staff reply after ``after_id``; built here, off the event loop."""
    return [(str(message.pk), message_json(message)) for message in pushed_messages(conversation, after_id=after_id)]


def last_message_id(conversation: Conversation) -> str | None:
    """Where a stream opened without a position starts: after the newest message (only new ones are pushed)."""
    newest = conversation.messages.order_by("-created_at", "-pk").values_list("pk", flat=True).first()
    return str(newest) if newest else None


def conversation_status(conversation: Conversation) -> str:
    return Conversation.objects.filter(pk=conversation.pk).values_list("status", flat=True).first() or ""


async def conversation_events(conversation: Conversation, *, after_id: str | None, message_json, sse_event,
                              max_open_s: float = MAX_OPEN_S):
    """The SSE text: ``message`` events for staff replies after ``after_id``, ``status`` when it changes."""
    cursor = after_id or await db_call(last_message_id)(conversation)
    yield "retry: 2000\n\n"
    status = conversation.status
    seen_version = -1
    opened = last_read = last_sent = time.monotonic()
    while time.monotonic() - opened < max_open_s:
        version = await sync_to_async(conversation_version, thread_sensitive=False)(conversation.public_id)
        now = time.monotonic()
        if version != seen_version or now - last_read >= BACKSTOP_S:
            seen_version, last_read = version, now
            pushed = await db_call(pushed_payloads)(conversation, after_id=cursor, message_json=message_json)
            for event_id, payload in pushed:
                cursor = event_id
                yield sse_event("message", payload, event_id)
                last_sent = now
            current = await db_call(conversation_status)(conversation)
            if current != status:
                status = current
                yield sse_event("status", {"conversation_id": conversation.public_id, "status": status})
                last_sent = now
                if status == Conversation.Status.CLOSED:
                    return
        if now - last_sent >= settings.KEFU_CHAT_HEARTBEAT_S:
            yield ": heartbeat\n\n"
            last_sent = now
        await asyncio.sleep(POLL_S)
