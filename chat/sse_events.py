"""SSE formatting: the text of one Server-Sent Event, and the closing event of a finished message.

Pure functions over a :class:`~chat.models.Message`; they read nothing and write nothing, so the
relay (:mod:`chat.sse`), the POST that answers at once (``chat.views``) and the conversation's
live stream (:mod:`chat.live`) all send the same bytes.
"""

from __future__ import annotations

import json

from chat.models import Message

FINAL_ID = "final"  # the id of the single done event of a reply that was known at once
RETRY_MS = 2000  # how long a browser waits before it reconnects


def sse_event(kind: str, data: dict, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id else []
    lines += [f"event: {kind}", "data: " + json.dumps(data, ensure_ascii=False)]
    return "\n".join(lines) + "\n\n"


def retry_line() -> str:
    """The stream's first line: the reconnect delay a browser should use."""
    return f"retry: {RETRY_MS}\n\n"


def done_payload(message: Message) -> dict:
    return {
        "message_id": str(message.pk), "conversation_id": message.conversation.public_id,
        "outcome": message.outcome, "reason": message.reason, "answer": message.text,
        "citations": message.citations, "suggestions": message.offered_questions, "timings": message.timings,
    }


def final_events(message: Message) -> str:
    """The closing event of a finished message: done, or error for a failed one (with its polite text)."""
    if message.outcome == Message.Outcome.FAILED:
        return sse_event("error", {"code": message.error_code or "generation_failed", "message": message.text},
                         FINAL_ID)
    return sse_event("done", done_payload(message), FINAL_ID)


def final_events_with_id(message: Message, event_id: str) -> str:
    """The closing event under the id of the job event that ended the stream (a reader resumes after it)."""
    return final_events(message).replace(f"id: {FINAL_ID}\n", f"id: {event_id}\n", 1)


def unavailable_event() -> str:
    """The closing event when the message could not even be stored failed (the database is gone too)."""
    return sse_event("error", {"code": "service_unavailable",
                               "message": "the service is briefly unavailable; try again in a few seconds"})
