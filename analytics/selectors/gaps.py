"""Knowledge gaps and top questions: raw drill-down reads grouped by meaning.

A gap is a customer question that ended badly: refused ("I don't know": no relevant
passage, out of scope), handed off, failed, or whose reply was rated down. Gaps are
grouped per knowledge base by embedding similarity, newest group first; a group whose
meaning an FAQ entry created after its newest question already covers is marked so.
Top questions come from the daily per-question rollups, merged by the same grouping.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, Sum

from analytics.filters import DashboardFilter
from analytics.models import QuestionRollup
from analytics.rollups import utc_days
from analytics.selectors import similarity
from chat.models import Message
from kb.models import FaqEntry, KnowledgeBase

GAP_OUTCOMES = ("refused", "handed_off", "failed")
NOT_GAPS = ("sensitive_word",)
TOP_CANDIDATES = 300  # most asked exact questions merged into groups; the top 30 groups come from these  # a refusal for a blocked word says nothing about missing knowledge


@dataclass(frozen=True)
class GapQuestion:
    message_id: str
    conversation_id: str
    text: str
    outcome: str
    reason: str
    down_rated: bool
    asked_at: datetime


@dataclass(frozen=True)
class GapGroup:
    knowledge_base_id: int
    knowledge_base: str
    representative: str
    count: int
    newest_at: datetime
    phrasings: tuple[tuple[str, int], ...]  # distinct texts with how often each was asked
    reasons: tuple[tuple[str, int], ...]
    examples: tuple[GapQuestion, ...]
    covered_by_faq_id: int | None = None

    @property
    def alternatives(self) -> tuple[str, ...]:
        return tuple(text for text, _ in self.phrasings if text != self.representative)


@dataclass(frozen=True)
class QuestionGroup:
    knowledge_base: str
    representative: str
    asked: int
    cached: int
    phrasings: tuple[tuple[str, int], ...]

    @property
    def cache_rate(self) -> float:
        return self.cached / self.asked if self.asked else 0.0


def gap_questions(flt: DashboardFilter, *, limit: int = similarity.MAX_TEXTS) -> list[tuple[int, GapQuestion]]:
    """(base id, question) for the newest gap questions of the window."""
    rows = Message.objects.filter(role="user", created_at__gte=flt.start, created_at__lt=flt.end).filter(
        Q(outcome__in=GAP_OUTCOMES) | Q(reply__feedback__rating="down")).exclude(reason__in=NOT_GAPS)
    rows = flt.scoped(rows)
    values = rows.order_by("-created_at").values_list(
        "id", "conversation__public_id", "text", "outcome", "reason", "reply__feedback__rating", "created_at",
        "conversation__knowledge_base_id")[:limit]
    return [(kb_id, GapQuestion(str(pk), conversation, text, outcome, reason, rating == "down", at))
            for pk, conversation, text, outcome, reason, rating, at, kb_id in values]


def grouped_by_meaning(texts: list[str]) -> tuple[object, list[list[int]]]:
    """(vectors, member index lists) for ``texts``."""
    vectors = similarity.embeddings(texts)
    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(similarity.cluster_labels(vectors)):
        members[label].append(index)
    return vectors, list(members.values())


def later_faq_entries(kb_id: int, since: datetime) -> list[tuple[int, str, datetime]]:
    """(id, question, created) of the base's FAQ entries created after ``since``: one query per base."""
    return list(FaqEntry.objects.filter(knowledge_base_id=kb_id, created_at__gt=since).order_by("id")
                .values_list("id", "question", "created_at"))


def covering_faq(entries: list[tuple[int, str, datetime]], centre_vector, newest_at: datetime) -> int | None:
    """The FAQ entry among ``entries``, created after the group's newest question, that means the same."""
    later = [(pk, question) for pk, question, created_at in entries if created_at > newest_at]
    if not later:
        return None
    vectors = similarity.embeddings([question for _, question in later])
    scores = vectors @ centre_vector
    best = int(scores.argmax())
    return later[best][0] if scores[best] >= similarity.GROUP_SIMILARITY else None


def gap_group(kb_id: int, name: str, questions: list[GapQuestion], vectors, members: list[int],
              faq_entries: list[tuple[int, str, datetime]]) -> GapGroup:
    chosen = [questions[index] for index in members]
    phrasings = Counter(question.text for question in chosen).most_common()
    reasons = Counter("down-voted" if q.down_rated and q.outcome not in GAP_OUTCOMES else (q.reason or q.outcome)
                      for q in chosen).most_common()
    representative = questions[similarity.central_index(vectors, members)].text
    newest = max(question.asked_at for question in chosen)
    centre = vectors[members].mean(axis=0)
    centre = centre / (float((centre ** 2).sum()) ** 0.5 or 1.0)
    return GapGroup(kb_id, name, representative, len(chosen), newest, tuple(phrasings[:8]), tuple(reasons),
                    tuple(sorted(chosen, key=lambda q: q.asked_at, reverse=True)[:5]),
                    covering_faq(faq_entries, centre, newest))


def knowledge_gaps(flt: DashboardFilter) -> list[GapGroup]:
    """Gap questions of the window grouped by meaning per base, newest group first."""
    names = dict(KnowledgeBase.objects.values_list("id", "name"))
    per_base: dict[int, list[GapQuestion]] = defaultdict(list)
    for kb_id, question in gap_questions(flt):
        per_base[kb_id].append(question)
    groups = []
    for kb_id, questions in per_base.items():
        vectors, clusters = grouped_by_meaning([question.text for question in questions])
        faq_entries = later_faq_entries(kb_id, min(question.asked_at for question in questions))
        groups += [gap_group(kb_id, names.get(kb_id, f"#{kb_id}"), questions, vectors, members, faq_entries)
                   for members in clusters]
    return sorted(groups, key=lambda group: (group.covered_by_faq_id is not None, -group.newest_at.timestamp()))


def top_questions(flt: DashboardFilter, *, limit: int = 30) -> list[QuestionGroup]:
    """The most asked questions of the window, merged by meaning, with their cache-hit rate."""
    days = utc_days(flt.start, flt.end)  # question counts are daily: the window is widened to whole UTC days
    rows = QuestionRollup.objects.filter(day__gte=days[0], day__lte=days[-1])
    rows = flt.scoped(rows, through="")
    exact = list(rows.order_by().values("knowledge_base_id", "question_key")
                 .annotate(asked=Sum("asked"), cached=Sum("cached")).order_by("-asked")[:TOP_CANDIDATES])
    texts = dict(rows.filter(question_key__in=[row["question_key"] for row in exact]).order_by()
                 .values_list("question_key", "text"))
    names = dict(KnowledgeBase.objects.values_list("id", "name"))
    per_base: dict[int, list[dict]] = defaultdict(list)
    for row in exact:
        per_base[row["knowledge_base_id"]].append({**row, "text": texts.get(row["question_key"], "")})
    groups = []
    for kb_id, entries in per_base.items():
        vectors, clusters = grouped_by_meaning([entry["text"] for entry in entries])
        for members in clusters:
            chosen = sorted((entries[index] for index in members), key=lambda entry: -entry["asked"])
            groups.append(QuestionGroup(
                names.get(kb_id, f"#{kb_id}"), chosen[0]["text"], sum(entry["asked"] for entry in chosen),
                sum(entry["cached"] for entry in chosen),
                tuple((entry["text"], entry["asked"]) for entry in chosen[:6])))
    return sorted(groups, key=lambda group: -group.asked)[:limit]
