"""Staff replies to handed-off conversations: the chat side of the analytics hand-off inbox.

A staff reply is stored like any assistant message of the conversation — role
``assistant``, final at once (outcome ``handed_off``, reason ``staff_reply``), no
``reply_to`` — so it reaches the customer through chat's existing paths: it is listed by
``GET /api/v1/chat/conversations/<id>`` with its ``stream_url``, and that stream
(:mod:`chat.sse`) serves it as one ``done`` event carrying the text, exactly like a
cached or direct answer. An open widget gets it at once, without a reload, on the
conversation's live stream (:mod:`chat.live`), woken when the reply commits. Closing a conversation takes it out of the inbox; the chat API
then answers new questions in it with 409 ``conversation_closed``.

Written by the analytics work (issue 6) as a new module so no existing chat file changed.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chat.live import STAFF_REPLY_REASON, conversation_touch
from chat.models import Conversation, Message

MAX_REPLY_CHARS = 4000


class StaffReplyRejected(ValueError):
    """A reply that cannot be sent; the message says why."""


def staff_reply_send(*, conversation: Conversation, text: str) -> Message:
    """Add a staff member's answer to a conversation waiting for a person."""
    text = text.strip()
    if not text:
        raise StaffReplyRejected(_("The reply is empty."))
    if len(text) > MAX_REPLY_CHARS:
        raise StaffReplyRejected(_("A reply is at most %(n)s characters.") % {"n": MAX_REPLY_CHARS})
    if conversation.status == Conversation.Status.CLOSED:
        raise StaffReplyRejected(_("This conversation is closed."))
    now = timezone.now()
    with transaction.atomic():
        reply = Message.objects.create(
            conversation=conversation, role=Message.Role.ASSISTANT, text=text, outcome=Message.Outcome.HANDED_OFF,
            reason=STAFF_REPLY_REASON, completed_at=now, timings={"total_ms": 0.0},
        )
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now)
        conversation_touch(public_id=conversation.public_id)
    return reply


def conversation_close(*, conversation: Conversation) -> Conversation:
    """Close a conversation (idempotent): it leaves the hand-off inbox and takes no new questions."""
    if conversation.status != Conversation.Status.CLOSED:
        now = timezone.now()
        with transaction.atomic():
            Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.CLOSED,
                                                                    updated_at=now)
            conversation_touch(public_id=conversation.public_id)
        conversation.status = Conversation.Status.CLOSED
    return conversation
