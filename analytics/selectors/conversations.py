"""Drill-down reads of chat records: down-rated answers, offered questions customers took, the hand-off inbox
and one transcript."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from analytics.filters import DashboardFilter
from chat.models import Conversation, Feedback, Message
from kb.models import Document, EvalCase, FaqEntry


@dataclass(frozen=True)
class RatedAnswer:
    conversation_id: str
    knowledge_base: str
    question: str
    answer: str
    citations: tuple[dict, ...]
    comment: str
    outcome: str
    rated_at: datetime
    knowledge_base_id: int = 0
    resolved_source: ConfirmedSource | None = None  # the right source a staff member named, if any


@dataclass(frozen=True)
class ConfirmedSource:
    """The source staff confirmed for a question (an evaluation case): an FAQ entry — the question is then one of
    its phrasings too — or a document."""

    name: str
    is_faq: bool

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TakenOffer:
    """A refused question, and the question its refusal offered that the customer then took (asked with one
    click): the customer's own label for where the refused question's answer is."""

    conversation_id: str
    knowledge_base: str
    knowledge_base_id: int
    refused_question: str
    taken_question: str
    taken_at: datetime
    source: str = ""  # the taken question's FAQ entry as the resolve form names it ("faq:<id>"), if it still exists
    resolved_source: ConfirmedSource | None = None  # the right source staff confirmed for the refused question


@dataclass(frozen=True)
class InboxItem:
    conversation_id: str
    knowledge_base: str
    channel: str
    visitor_id: str
    handed_off_at: datetime
    last_question: str


@dataclass(frozen=True)
class TranscriptLine:
    role: str
    text: str
    outcome: str
    reason: str
    citations: tuple[dict, ...]
    rating: str
    at: datetime
    answerability: float | None = None  # the probability the base answers the question (assistant replies)
    language: str = ""  # questions: the language the customer wrote in (ISO 639-1, chat.pipeline.language)
    suggestions: tuple[str, ...] = ()  # an "I don't know": the FAQ questions it offered the customer
    searched_as: str = ""  # a follow-up: the question as retrieval read it, with the conversation's topic filled in

    @property
    def from_staff(self) -> bool:
        return self.reason == "staff_reply"


@dataclass(frozen=True)
class Transcript:
    conversation_id: str
    knowledge_base: str
    channel: str
    visitor_id: str
    status: str
    started_at: datetime
    handed_off_at: datetime | None
    lines: tuple[TranscriptLine, ...]

    @property
    def waiting_for_staff(self) -> bool:
        return self.status == "handed_off"


def down_rated_answers(flt: DashboardFilter, *, limit: int = 50) -> list[RatedAnswer]:
    """Replies rated down during the window, newest rating first.

    Selected by the rating's own time (``updated_at``, on the small feedback table), not by the
    message's: a filter on the message time makes the database walk the whole message table.
    """
    ratings = Feedback.objects.filter(rating="down", updated_at__gte=flt.start, updated_at__lt=flt.end)
    ratings = flt.scoped(ratings, through="message__conversation__")
    ratings = list(ratings.select_related("message__reply_to", "message__conversation__knowledge_base")
                   .order_by("-updated_at")[:limit])
    resolved = resolved_sources(ratings)
    return [RatedAnswer(
        conversation_id=f.message.conversation.public_id, knowledge_base=f.message.conversation.knowledge_base.name,
        question=(question := f.message.reply_to.text if f.message.reply_to else ""), answer=f.message.text,
        citations=tuple(f.message.citations or ()), comment=f.comment, outcome=f.message.outcome,
        rated_at=f.updated_at, knowledge_base_id=f.message.conversation.knowledge_base_id,
        resolved_source=resolved.get((f.message.conversation.knowledge_base_id, " ".join(question.split()))),
    ) for f in ratings]


def taken_offers(flt: DashboardFilter, *, limit: int = 50) -> list[TakenOffer]:
    """Questions customers took from a refusal's offered questions during the window, newest first."""
    taken = Message.objects.filter(taken_from__isnull=False, created_at__gte=flt.start, created_at__lt=flt.end)
    taken = flt.scoped(taken)
    taken = list(taken.select_related("taken_from__reply_to", "conversation__knowledge_base")
                 .order_by("-created_at")[:limit])
    refused = {m: (m.taken_from.reply_to.text if m.taken_from.reply_to else "") for m in taken}
    resolved = confirmed_sources({" ".join(text.split()) for text in refused.values()})
    entries = {(kb_id, question): pk for pk, kb_id, question in FaqEntry.objects.filter(
        knowledge_base_id__in={m.conversation.knowledge_base_id for m in taken},
        question__in={m.text for m in taken}).values_list("id", "knowledge_base_id", "question")}
    return [TakenOffer(
        conversation_id=m.conversation.public_id, knowledge_base=m.conversation.knowledge_base.name,
        knowledge_base_id=(kb_id := m.conversation.knowledge_base_id), refused_question=refused[m],
        taken_question=m.text, taken_at=m.created_at,
        source=f"faq:{entries[(kb_id, m.text)]}" if (kb_id, m.text) in entries else "",
        resolved_source=resolved.get((kb_id, " ".join(refused[m].split()))),
    ) for m in taken]


def resolved_sources(ratings) -> dict[tuple[int, str], ConfirmedSource]:
    """(base id, question) → the name of the source staff confirmed for it, for the rated questions."""
    return confirmed_sources({" ".join(f.message.reply_to.text.split()) for f in ratings if f.message.reply_to})


def confirmed_sources(questions: set[str]) -> dict[tuple[int, str], ConfirmedSource]:
    """(base id, question) → the source staff confirmed for it (an evaluation case), for ``questions``."""
    cases = EvalCase.objects.filter(question__in=questions).select_related("faq_entry", "document")
    return {(c.knowledge_base_id, c.question): (ConfirmedSource(c.faq_entry.question, True) if c.faq_entry
                                                  else ConfirmedSource(c.document.title, False))
            for c in cases}


def source_choices(knowledge_base_ids: set[int]) -> dict[int, list[tuple[str, str]]]:
    """Per base: (value, label) of every FAQ entry and document a staff member can name as the right source."""
    out: dict[int, list[tuple[str, str]]] = {kb_id: [] for kb_id in knowledge_base_ids}
    for pk, kb_id, question in FaqEntry.objects.filter(knowledge_base_id__in=knowledge_base_ids).values_list(
            "id", "knowledge_base_id", "question"):
        out[kb_id].append((f"faq:{pk} {question[:120]}", "FAQ"))
    for pk, kb_id, title in Document.objects.filter(knowledge_base_id__in=knowledge_base_ids).values_list(
            "id", "knowledge_base_id", "title"):
        out[kb_id].append((f"doc:{pk} {title[:120]}", "document"))
    return out


def channel_name(widget_key) -> str:
    return (widget_key.name or widget_key.public_key[:12]) if widget_key else "—"


def handoff_inbox(*, knowledge_base_id: int | None = None, limit: int = 200) -> list[InboxItem]:
    """Conversations waiting for a person, longest-waiting first."""
    waiting = Conversation.objects.filter(status=Conversation.Status.HANDED_OFF)
    if knowledge_base_id:
        waiting = waiting.filter(knowledge_base_id=knowledge_base_id)
    conversations = list(waiting.select_related("knowledge_base", "widget_key")
                         .order_by("handed_off_at", "created_at")[:limit])
    last_questions: dict[int, str] = {}
    for conversation_id, text in (Message.objects.filter(conversation__in=conversations, role="user")
                                  .order_by("conversation_id", "created_at").values_list("conversation_id", "text")):
        last_questions[conversation_id] = text
    return [InboxItem(c.public_id, c.knowledge_base.name, channel_name(c.widget_key), c.visitor_id,
                      c.handed_off_at or c.updated_at, last_questions.get(c.pk, "")) for c in conversations]


def transcript(*, conversation_id: str) -> Transcript | None:
    conversation = (Conversation.objects.select_related("knowledge_base", "widget_key")
                    .filter(public_id=conversation_id).first())
    if conversation is None:
        return None
    lines = tuple(
        TranscriptLine(m.role, m.text, m.outcome, m.reason, tuple(m.citations or ()),
                       getattr(m, "feedback", None).rating if hasattr(m, "feedback") else "", m.created_at,
                       m.answerability, m.language, tuple(m.offered_questions), m.standalone_query)
        for m in conversation.messages.select_related("feedback").order_by("created_at")
    )
    return Transcript(conversation.public_id, conversation.knowledge_base.name, channel_name(conversation.widget_key),
                      conversation.visitor_id, conversation.status, conversation.created_at,
                      conversation.handed_off_at, lines)
