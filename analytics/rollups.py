"""Hourly rollups of chat and inference records: the only writer of the analytics tables.

:func:`rollup_hours` recomputes every hour in ``[start, end)`` from the raw rows (it
deletes what was there and writes it again, so running it twice gives the same rows).
:func:`rollup_refresh` finds the hours that went stale since the last refresh — new
hours, replies finished late, feedback given later, generations that finished — and
recomputes only those. Beat runs it every few minutes in service mode
(``analytics.rollup``); in embedded mode the dashboard calls it when it is opened.

Bucketing (all UTC): conversations by their ``created_at``; a message, its outcome,
latency, tokens and the rating it received by the message's ``created_at``; expert
load by the generation's ``finished_at``; question counts by the UTC day asked.

Budget: one pass over the messages of the range, streamed in chunks of 5,000 rows,
memory bounded by the number of (hour, base, key) slots and one day's distinct questions; about
15 s and under 300 MB for a first rollup of 1M messages on one core (bench/analytics_dashboard.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import zip_longest

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from analytics import histogram, sketch
from analytics.models import (
    DailyRollup,
    ExpertLoadDaily,
    ExpertLoadRollup,
    HourlyRollup,
    QuestionRollup,
    RollupMetrics,
    RollupState,
)
from chat.models import Conversation, Feedback, Message
from inference.models import GenerationJob

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
STATE_NAME = "hourly"
LOCK_KEY = "analytics:rollup:lock"
LOCK_SECONDS = 900
CHUNK = 5000
OUTCOME_FIELDS = {
    "cached": "outcome_cached", "direct": "outcome_direct", "answered": "outcome_answered",
    "handed_off": "outcome_handed_off", "refused": "outcome_refused", "failed": "outcome_failed",
    "pending": "outcome_pending",
}
LATE_REPLY_WINDOW = timedelta(days=2)  # far beyond the generation timeout and the stale-job reaper
QUESTIONS_PER_DAY = 200  # most asked questions kept per UTC day × base × key
UNCLASSIFIED = "unclassified"  # questions answered before the intent router ran (cache, guard)


@dataclass(frozen=True)
class RollupResult:
    """What one recomputation wrote."""

    start: datetime
    end: datetime
    hourly_rows: int
    question_rows: int
    expert_rows: int


@dataclass
class SlotTotals:
    """Accumulator for one (hour, base, key) slot while the rows stream past."""

    conversations: int = 0
    messages: int = 0
    questions: int = 0
    visitors: set = field(default_factory=set)
    outcomes: Counter = field(default_factory=Counter)
    intents: Counter = field(default_factory=Counter)
    ttft: list = field(default_factory=histogram.empty)
    total: list = field(default_factory=histogram.empty)
    queue_ms_sum: float = 0.0
    queue_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_s_sum: float = 0.0
    tokens_per_s_count: int = 0
    feedback: Counter = field(default_factory=Counter)


@dataclass
class QuestionTotals:
    text: str
    asked: int = 0
    cached: int = 0


def hour_floor(moment: datetime) -> datetime:
    """The UTC hour a moment falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment.astimezone(UTC) else floor + HOUR


def question_key(text: str) -> str:
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()


def time_to_first_token_ms(timings: dict) -> float | None:
    """What the customer waited for the first words: first streamed token, else the whole reply.

    ``first_token_ms`` is POST → first token seen by a reader (generated replies);
    ``ttft_ms`` is the engine's own figure when no reader recorded one; a reply known at
    once (cached, direct, refused) arrives whole, so its first token is its total.
    """
    for name in ("first_token_ms", "ttft_ms", "total_ms"):
        value = timings.get(name)
        if isinstance(value, int | float):
            return float(value)
    return None


def message_rows(start: datetime, end: datetime) -> Iterator[tuple]:
    return (Message.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
            .values_list("created_at", "role", "outcome", "intent", "timings", "prompt_tokens",
                         "completion_tokens", "conversation_id",
                         "conversation__knowledge_base_id", "conversation__widget_key_id",
                         "conversation__visitor_id", "feedback__rating", "reply_to_id")
            .iterator(chunk_size=CHUNK))


def add_message(slots: dict, row: tuple) -> None:
    (created_at, role, outcome, intent, timings, prompt_tokens, completion_tokens,
     conversation_id, kb_id, key_id, visitor_id, rating, reply_to_id) = row
    slot_key = (hour_floor(created_at), kb_id, key_id or 0)
    slot = slots.setdefault(slot_key, SlotTotals())
    slot.messages += 1
    if role == "user":
        slot.questions += 1
        slot.outcomes[outcome] += 1
        slot.intents[intent or UNCLASSIFIED] += 1
        slot.visitors.add(visitor_id or f"conversation:{conversation_id}")
        return
    if rating:
        slot.feedback[rating] += 1
    if reply_to_id is None or outcome in ("pending", "failed"):
        return
    add_reply_timings(slot, timings or {}, prompt_tokens, completion_tokens)


def add_reply_timings(slot: SlotTotals, timings: dict, prompt_tokens, completion_tokens) -> None:
    first = time_to_first_token_ms(timings)
    if first is not None:
        histogram.observe(slot.ttft, first)
    total = timings.get("total_ms")
    if isinstance(total, int | float):
        histogram.observe(slot.total, float(total))
    queue = timings.get("queue_ms")
    if isinstance(queue, int | float):
        slot.queue_ms_sum += queue
        slot.queue_count += 1
    speed = timings.get("tokens_per_s")
    if isinstance(speed, int | float) and speed > 0:
        slot.tokens_per_s_sum += speed
        slot.tokens_per_s_count += 1
    slot.prompt_tokens += prompt_tokens or 0
    slot.completion_tokens += completion_tokens or 0


def add_conversations(slots: dict, start: datetime, end: datetime) -> None:
    rows = (Conversation.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
            .values_list("created_at", "knowledge_base_id", "widget_key_id").iterator(chunk_size=CHUNK))
    for created_at, kb_id, key_id in rows:
        slots.setdefault((hour_floor(created_at), kb_id, key_id or 0), SlotTotals()).conversations += 1


def hourly_row(slot_key: tuple, slot: SlotTotals) -> HourlyRollup:
    hour, kb_id, key_id = slot_key
    outcomes = {name: slot.outcomes.get(outcome, 0) for outcome, name in OUTCOME_FIELDS.items()}
    return HourlyRollup(
        hour=hour, knowledge_base_id=kb_id, widget_key_id=key_id, conversations=slot.conversations,
        messages=slot.messages, questions=slot.questions, visitors=len(slot.visitors),
        visitor_sketch=sketch.of(slot.visitors), **outcomes,
        intents=dict(slot.intents), ttft_buckets=slot.ttft, total_buckets=slot.total,
        queue_ms_sum=slot.queue_ms_sum, queue_count=slot.queue_count, prompt_tokens=slot.prompt_tokens,
        completion_tokens=slot.completion_tokens, tokens_per_s_sum=slot.tokens_per_s_sum,
        tokens_per_s_count=slot.tokens_per_s_count, feedback_up=slot.feedback.get("up", 0),
        feedback_down=slot.feedback.get("down", 0),
    )


def expert_rows(start: datetime, end: datetime) -> list[ExpertLoadRollup]:
    """Per hour × model × layer token counts from the generations that finished in the range."""
    totals: dict[tuple, list[int]] = {}
    requests: Counter = Counter()
    jobs = (GenerationJob.objects.filter(finished_at__gte=start, finished_at__lt=end, expert_counts__isnull=False)
            .order_by().values_list("finished_at", "model", "expert_counts").iterator(chunk_size=CHUNK))
    for finished_at, model, expert_counts in jobs:
        for layer, counts in layer_counts(expert_counts):
            slot_key = (hour_floor(finished_at), model or "", layer)
            total = totals.setdefault(slot_key, [0] * len(counts))
            if len(total) < len(counts):
                total.extend([0] * (len(counts) - len(total)))
            for expert, tokens in enumerate(counts):
                total[expert] += int(tokens)
            requests[slot_key] += 1
    return [ExpertLoadRollup(hour=hour, model=model, layer=layer, counts=counts, requests=requests[(hour, model, layer)])
            for (hour, model, layer), counts in totals.items()]


def layer_counts(expert_counts) -> list[tuple[int, list[int]]]:
    """(layer, tokens per expert) from what inference stores on a job.

    inference.moe writes ``{"layers": [...], "num_experts": E, "counts": [[...], ...]}``;
    the model's field comment also allows ``{layer: [...]}``. Anything else counts as nothing.
    """
    if not isinstance(expert_counts, dict):
        return []
    if "counts" in expert_counts and "layers" in expert_counts:
        return [(int(layer), list(row)) for layer, row in zip(expert_counts["layers"], expert_counts["counts"],
                                                              strict=False)]
    pairs = []
    for layer, row in expert_counts.items():
        if str(layer).isdigit() and isinstance(row, list):
            pairs.append((int(layer), list(row)))
    return sorted(pairs)


def utc_days(start: datetime, end: datetime) -> list:
    """The UTC dates that ``[start, end)`` touches."""
    first, last = start.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def question_rows_of_day(day) -> list[QuestionRollup]:
    """The most asked questions of one UTC day, per base × key."""
    day_start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    totals: dict[tuple, dict[str, QuestionTotals]] = defaultdict(dict)
    rows = (Message.objects.filter(role="user", created_at__gte=day_start, created_at__lt=day_start + timedelta(days=1))
            .order_by().values_list("normalized_text", "text", "outcome", "conversation__knowledge_base_id",
                                    "conversation__widget_key_id").iterator(chunk_size=CHUNK))
    for normalized, text, outcome, kb_id, key_id in rows:
        entry = totals[(kb_id, key_id or 0)].setdefault(question_key(normalized or text), QuestionTotals(text[:500]))
        entry.asked += 1
        entry.cached += outcome == "cached"
    kept = []
    for (kb_id, key_id), questions in totals.items():
        top = sorted(questions.items(), key=lambda item: -item[1].asked)[:QUESTIONS_PER_DAY]
        kept += [QuestionRollup(day=day, knowledge_base_id=kb_id, widget_key_id=key_id, question_key=key,
                                text=entry.text, asked=entry.asked, cached=entry.cached) for key, entry in top]
    return kept


# --- daily rows: sums of hourly rows per day of the display time zone --------------------------

def local_day(hour: datetime) -> date:
    return timezone.localtime(hour, timezone.get_default_timezone()).date()


def day_first_hour(day: date) -> datetime:
    """The first UTC hour whose start falls on ``day`` in the display time zone."""
    return hour_ceil(datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone()))


def local_days(start: datetime, end: datetime) -> list[date]:
    """The display-time-zone days of the hours in ``[start, end)``."""
    first, last = local_day(start), local_day(end - HOUR)
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def summed_metrics(rows: list[dict]) -> dict:
    """Field-wise sum of rollup rows: counters add, histograms add per bucket, intent counts merge."""
    total = {name: sum(row[name] for row in rows) for name in RollupMetrics.METRIC_FIELDS}
    intents: Counter = Counter()
    for row in rows:
        intents.update(row["intents"])
    total["intents"] = dict(intents)
    total["visitor_sketch"] = sketch.union(row["visitor_sketch"] for row in rows)
    total["ttft_buckets"] = histogram.merged(row["ttft_buckets"] for row in rows)
    total["total_buckets"] = histogram.merged(row["total_buckets"] for row in rows)
    return total


def daily_rows(days: list[date]) -> tuple[list[DailyRollup], list[ExpertLoadDaily]]:
    """Daily rows of ``days`` from the hourly rows as they are now."""
    span = (day_first_hour(days[0]), day_first_hour(days[-1] + timedelta(days=1)))
    fields = ("hour", "knowledge_base_id", "widget_key_id", "intents", "ttft_buckets", "total_buckets",
              "visitor_sketch", *RollupMetrics.METRIC_FIELDS)
    slots: dict[tuple, list[dict]] = defaultdict(list)
    for row in HourlyRollup.objects.filter(hour__gte=span[0], hour__lt=span[1]).values(*fields):
        slots[(local_day(row["hour"]), row["knowledge_base_id"], row["widget_key_id"])].append(row)
    daily = [DailyRollup(day=day, knowledge_base_id=kb_id, widget_key_id=key_id, **summed_metrics(rows))
             for (day, kb_id, key_id), rows in slots.items()]
    experts: dict[tuple, list] = {}
    for hour, model, layer, counts, requests in (ExpertLoadRollup.objects.filter(hour__gte=span[0], hour__lt=span[1])
                                                 .values_list("hour", "model", "layer", "counts", "requests")):
        entry = experts.setdefault((local_day(hour), model, layer), [[], 0])
        entry[0] = [a + b for a, b in zip_longest_zero(entry[0], counts)]
        entry[1] += requests
    expert_daily = [ExpertLoadDaily(day=day, model=model, layer=layer, counts=counts, requests=requests)
                    for (day, model, layer), (counts, requests) in experts.items()]
    return daily, expert_daily


def zip_longest_zero(left: list[int], right: list[int]):
    return zip_longest(left, right, fillvalue=0)


def daily_rollup(days: list[date]) -> int:
    """Recompute the daily rows of ``days`` (call after their hourly rows changed)."""
    daily, experts = daily_rows(days)
    with transaction.atomic():
        DailyRollup.objects.filter(day__gte=days[0], day__lte=days[-1]).delete()
        ExpertLoadDaily.objects.filter(day__gte=days[0], day__lte=days[-1]).delete()
        DailyRollup.objects.bulk_create(daily, batch_size=1000)
        ExpertLoadDaily.objects.bulk_create(experts, batch_size=1000)
    return len(daily)


def rollup_hours(start: datetime, end: datetime) -> RollupResult:
    """Recompute every UTC hour overlapping ``[start, end)`` from the raw rows (idempotent).

    Question rollups are daily, so the whole UTC days around the range are recomputed for them.
    """
    start, end = hour_floor(start), hour_ceil(end)
    slots: dict[tuple, SlotTotals] = {}
    for row in message_rows(start, end):
        add_message(slots, row)
    add_conversations(slots, start, end)
    hourly = [hourly_row(slot_key, slot) for slot_key, slot in slots.items()]
    experts = expert_rows(start, end)
    with transaction.atomic():
        HourlyRollup.objects.filter(hour__gte=start, hour__lt=end).delete()
        ExpertLoadRollup.objects.filter(hour__gte=start, hour__lt=end).delete()
        HourlyRollup.objects.bulk_create(hourly, batch_size=1000)
        ExpertLoadRollup.objects.bulk_create(experts, batch_size=1000)
    daily_rollup(local_days(start, end))
    questions = 0
    for day in utc_days(start, end):  # one day at a time bounds the memory of a first full rollup
        rows = question_rows_of_day(day)
        with transaction.atomic():
            QuestionRollup.objects.filter(day=day).delete()
            QuestionRollup.objects.bulk_create(rows, batch_size=1000)
        questions += len(rows)
    return RollupResult(start, end, len(hourly), questions, len(experts))


def stale_hours(since: datetime, now: datetime) -> set[datetime]:
    """Hours whose rollups changed after ``since``: recent hours and hours touched by late writes.

    A reply finishes within the generation timeout, so late replies are looked for among the
    messages of the last ``LATE_REPLY_WINDOW`` only (an index range on ``created_at``, not a scan of
    the whole table); ratings can come any time, so the feedback table is read by ``updated_at``
    alone and the rated messages' hours looked up by primary key.
    """
    hours = set(hour_range(hour_floor(since) - HOUR, hour_ceil(now)))
    late_replies = (Message.objects.filter(created_at__gte=since - LATE_REPLY_WINDOW, created_at__lt=since - HOUR,
                                           completed_at__gte=since).order_by()
                    .values_list("created_at", flat=True).iterator(chunk_size=CHUNK))
    rated = list(Feedback.objects.filter(updated_at__gte=since).order_by().values_list("message_id", flat=True))
    late_ratings = []
    for start in range(0, len(rated), CHUNK):
        late_ratings += Message.objects.filter(pk__in=rated[start:start + CHUNK]).values_list("created_at", flat=True)
    for created_at in (*late_replies, *late_ratings):
        hours.add(hour_floor(created_at))
    return hours


def hour_range(start: datetime, end: datetime) -> list[datetime]:
    hours, hour = [], hour_floor(start)
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


def contiguous_ranges(hours: set[datetime]) -> list[tuple[datetime, datetime]]:
    ranges: list[list[datetime]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + HOUR
        else:
            ranges.append([hour, hour + HOUR])
    return [(start, end) for start, end in ranges]


def first_activity() -> datetime | None:
    moments = [
        Message.objects.aggregate(first=Min("created_at"))["first"],
        Conversation.objects.aggregate(first=Min("created_at"))["first"],
        GenerationJob.objects.filter(expert_counts__isnull=False).aggregate(first=Min("finished_at"))["first"],
    ]
    moments = [moment for moment in moments if moment is not None]
    return min(moments) if moments else None


def rollup_refresh(*, now: datetime | None = None) -> list[RollupResult]:
    """Recompute the stale hours since the last refresh (everything, the first time).

    One refresh at a time (a cache lock): beat and an embedded dashboard may both call it.
    The watermark is the moment this refresh started, so a row written while it runs is
    picked up by the next one.
    """
    if not cache.add(LOCK_KEY, 1, timeout=LOCK_SECONDS):
        log.info("analytics rollup already running; skipped")
        return []
    try:
        started = now or timezone.now()
        state = RollupState.objects.filter(name=STATE_NAME).first()
        if state is None or state.time_zone != settings.TIME_ZONE:  # first run, or daily rows cut in another zone
            first = first_activity()
            hours = set(hour_range(first, hour_ceil(started))) if first else set()
        else:
            hours = stale_hours(state.watermark, started)
        results = [rollup_hours(start, end) for start, end in contiguous_ranges(hours)]
        RollupState.objects.update_or_create(name=STATE_NAME,
                                             defaults={"watermark": started, "time_zone": settings.TIME_ZONE})
        return results
    finally:
        cache.delete(LOCK_KEY)


def rollup_watermark() -> datetime | None:
    return RollupState.objects.filter(name=STATE_NAME).values_list("watermark", flat=True).first()
