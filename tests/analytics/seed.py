"""Test data for analytics: conversations and messages written straight through the chat/kb models.

``created_at`` is ``auto_now_add`` on the chat models, so :func:`backdated` lets a test
write rows at chosen moments (the field's flag is restored afterwards).
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from chat.models import Conversation, Feedback, Message, WidgetKey
from kb.models import KnowledgeBase

OUTCOMES = ("cached", "direct", "answered", "handed_off", "refused", "failed", "pending")
INTENTS = ("faq", "knowledge", "chitchat", "handoff", "out_of_scope", "")


@contextlib.contextmanager
def backdated():
    """Let ``created_at`` take the value the test sets (chat models stamp it on insert otherwise)."""
    fields = [model._meta.get_field("created_at") for model in (Conversation, Message, Feedback)]
    saved = [field.auto_now_add for field in fields]
    for field in fields:
        field.auto_now_add = False
    try:
        yield
    finally:
        for field, value in zip(fields, saved, strict=True):
            field.auto_now_add = value


def knowledge_base(slug: str = "shop") -> KnowledgeBase:
    return KnowledgeBase.objects.create(name=slug.title(), slug=slug)


def widget_key(kb: KnowledgeBase, name: str = "site") -> WidgetKey:
    return WidgetKey.objects.create(knowledge_base=kb, name=name, allowed_origins=["https://shop.example"])


def conversation(kb, *, at: datetime, key=None, visitor: str = "v1", status: str = "open") -> Conversation:
    with backdated():
        return Conversation.objects.create(knowledge_base=kb, widget_key=key, visitor_id=visitor, created_at=at,
                                           status=status, handed_off_at=at if status == "handed_off" else None)


def exchange(conv: Conversation, *, at: datetime, question: str = "how do I return an item?",
             outcome: str = "answered", intent: str = "knowledge", answer: str = "Within 30 days [1].",
             timings: dict | None = None, prompt_tokens: int | None = None, completion_tokens: int | None = None,
             rating: str = "", citations: list | None = None, reason: str = "") -> tuple[Message, Message]:
    """One question and its reply, both at ``at``; a rating when given."""
    with backdated():
        asked = Message.objects.create(conversation=conv, role="user", text=question,
                                       normalized_text=" ".join(question.lower().split()), outcome=outcome,
                                       intent=intent, created_at=at, reason=reason)
        reply = Message.objects.create(
            conversation=conv, role="assistant", reply_to=asked, text=answer, outcome=outcome, intent=intent,
            timings=timings if timings is not None else {"total_ms": 800.0}, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, created_at=at, citations=citations or [], reason=reason,
            completed_at=None if outcome == "pending" else at + timedelta(seconds=1))
        if rating:
            Feedback.objects.create(message=reply, rating=rating, created_at=at)
    return asked, reply


@dataclass(frozen=True)
class Generated:
    start: datetime
    end: datetime
    messages: int


def random_traffic(*, bases: list, keys: dict, start: datetime, hours: int, conversations: int,
                   seed: int = 7) -> Generated:
    """Random conversations over ``hours`` hours: mixed outcomes, intents, timings, tokens and ratings."""
    rng = random.Random(seed)
    count = 0
    for _ in range(conversations):
        kb = rng.choice(bases)
        key = rng.choice([*keys.get(kb.pk, []), None])
        at = start + timedelta(seconds=rng.uniform(0, hours * 3600 - 120))
        conv = conversation(kb, at=at, key=key, visitor=f"visitor-{rng.randint(0, conversations // 3)}")
        for turn in range(rng.randint(1, 4)):
            outcome = rng.choice(OUTCOMES)
            generated = outcome == "answered"
            timings = {"pipeline_ms": rng.uniform(5, 80), "total_ms": rng.uniform(50, 9000)}
            if generated:
                timings.update(queue_ms=rng.uniform(0, 400), first_token_ms=rng.uniform(100, 3000),
                               tokens_per_s=rng.uniform(5, 60))
            exchange(conv, at=at + timedelta(seconds=turn * 20), outcome=outcome, intent=rng.choice(INTENTS),
                     question=rng.choice(["where is my order?", "refund policy", "Refund  policy", "opening hours"]),
                     timings=timings, prompt_tokens=rng.randint(100, 900) if generated else None,
                     completion_tokens=rng.randint(10, 200) if generated else None,
                     rating=rng.choice(["", "", "up", "down"]))
            count += 2
    return Generated(start, start + timedelta(hours=hours), count)
