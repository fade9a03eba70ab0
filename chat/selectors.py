"""Reads of the chat app: widget keys, conversations, messages and what a base's chat profile says."""

from __future__ import annotations

import uuid

from django.conf import settings

from chat.lookups import remembered
from chat.models import ChatProfile, Conversation, Message, WidgetKey


def widget_key_get(*, public_key: str) -> WidgetKey | None:
    """An enabled widget key with its base, or None (remembered for a moment: :mod:`chat.lookups`)."""
    if not public_key:
        return None
    return remembered("widget_key", public_key, lambda: WidgetKey.objects.select_related("knowledge_base").filter(
        public_key=public_key, enabled=True).first())


def origin_allowed(*, widget_key: WidgetKey, origin: str) -> bool:
    return origin.rstrip("/") in {o.rstrip("/") for o in widget_key.allowed_origins}


def origin_allowed_by_any_key(*, origin: str) -> bool:
    """CORS preflights carry no key, so they are answered for origins some enabled key allows."""
    origin = origin.rstrip("/")
    for origins in WidgetKey.objects.filter(enabled=True).values_list("allowed_origins", flat=True):
        if origin in {o.rstrip("/") for o in origins}:
            return True
    return False


def conversation_get(*, public_id: str, widget_key: WidgetKey | None = None) -> Conversation | None:
    """A conversation by its public id; with a key, only one of that key's base. None for an id no conversation can
    have (a NUL byte: PostgreSQL refuses it in a query)."""
    if "\x00" in public_id:
        return None
    conversations = Conversation.objects.select_related("widget_key", "knowledge_base")
    if widget_key is not None:
        conversations = conversations.filter(knowledge_base_id=widget_key.knowledge_base_id)
    return conversations.filter(public_id=public_id).first()


def message_get(*, message_id) -> Message | None:
    """A message with its conversation and key, or None (also for malformed ids)."""
    try:
        uuid.UUID(str(message_id))
    except ValueError:
        return None
    return Message.objects.select_related("conversation__widget_key", "reply_to").filter(pk=message_id).first()


def offering_refusal(*, conversation: Conversation, message_id, question: str) -> Message | None:
    """The refusal of ``conversation`` that offered ``question`` (the customer took one of its suggestions), or
    None: no such message in this conversation, not a refusal, or it never offered this question."""
    message = message_get(message_id=message_id)
    if message is None or message.conversation_id != conversation.pk or message.role != Message.Role.ASSISTANT:
        return None
    wanted = " ".join(question.split()).casefold()
    offered = {" ".join(text.split()).casefold() for text in message.offered_questions}
    return message if wanted in offered else None


def conversation_messages(*, conversation: Conversation) -> list[Message]:
    return list(conversation.messages.select_related("feedback").order_by("created_at"))


def chat_profile_of(kb) -> ChatProfile:
    """The base's chat profile, or an unsaved one with the defaults (remembered for a moment: :mod:`chat.lookups`)."""
    return remembered("chat_profile", kb.pk, lambda: ChatProfile.objects.filter(knowledge_base_id=kb.pk).first()
                      or ChatProfile(knowledge_base_id=kb.pk))


def relevance_floor_of(profile: ChatProfile) -> float:
    return profile.relevance_floor if profile.relevance_floor is not None else settings.KEFU_CHAT_RELEVANCE_FLOOR


def cache_hit_rate(*, knowledge_base_id: int | None = None, since=None) -> tuple[int, int]:
    """(questions served from the answer cache, questions asked) — the cache's hit rate, for dashboards."""
    questions = Message.objects.filter(role=Message.Role.USER)
    if knowledge_base_id is not None:
        questions = questions.filter(conversation__knowledge_base_id=knowledge_base_id)
    if since is not None:
        questions = questions.filter(created_at__gte=since)
    return questions.filter(outcome=Message.Outcome.CACHED).count(), questions.count()
