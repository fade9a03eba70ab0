"""Hourly rollups against raw counts: generated traffic, empty ranges, UTC hour edges, late writes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour

from analytics import histogram
from analytics.models import HourlyRollup, QuestionRollup, RollupState
from analytics.rollups import rollup_hours, rollup_refresh
from chat.models import Conversation, Feedback, Message
from tests.analytics import seed

START = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


def raw_question_counts() -> dict:
    """Per (UTC hour, base, key): questions and each outcome, straight from the message table."""
    outcomes = {f"outcome_{name}": Count("id", filter=Q(outcome=name)) for name in seed.OUTCOMES}
    rows = (Message.objects.filter(role="user").annotate(hour=TruncHour("created_at", tzinfo=UTC))
            .values("hour", "conversation__knowledge_base_id", "conversation__widget_key_id")
            .annotate(questions=Count("id"), **outcomes))
    return {(row["hour"], row["conversation__knowledge_base_id"], row["conversation__widget_key_id"] or 0):
            {key: value for key, value in row.items() if key == "questions" or key.startswith("outcome_")}
            for row in rows}


def rolled_question_counts() -> dict:
    fields = ["questions", *(f"outcome_{name}" for name in seed.OUTCOMES)]
    return {(row.hour, row.knowledge_base_id, row.widget_key_id): {name: getattr(row, name) for name in fields}
            for row in HourlyRollup.objects.all() if row.questions}


@pytest.fixture
def traffic(db):
    shop, help_desk = seed.knowledge_base("shop"), seed.knowledge_base("help")
    keys = {shop.pk: [seed.widget_key(shop, "web"), seed.widget_key(shop, "app")],
            help_desk.pk: [seed.widget_key(help_desk, "web")]}
    generated = seed.random_traffic(bases=[shop, help_desk], keys=keys, start=START, hours=30, conversations=120)
    return generated


def test_rollups_match_raw_counts_per_hour_base_and_key(traffic):
    # given random traffic over 30 hours, two bases, three keys and key-less conversations
    # when the range is rolled up
    rollup_hours(traffic.start, traffic.end + timedelta(hours=1))
    # then every slot's questions and outcomes equal the raw counts
    assert rolled_question_counts() == raw_question_counts()
    # and the totals of everything else match too
    totals = HourlyRollup.objects.aggregate(messages=Sum("messages"), conversations=Sum("conversations"),
                                            up=Sum("feedback_up"), down=Sum("feedback_down"),
                                            prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    assert totals["messages"] == Message.objects.count() == traffic.messages
    assert totals["conversations"] == Conversation.objects.count() == 120
    assert totals["up"] == Feedback.objects.filter(rating="up").count()
    assert totals["down"] == Feedback.objects.filter(rating="down").count()
    tokens = Message.objects.aggregate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    assert (totals["prompt"], totals["completion"]) == (tokens["prompt"], tokens["completion"])
    intents = {}
    for row in HourlyRollup.objects.all():
        for name, count in row.intents.items():
            intents[name] = intents.get(name, 0) + count
    raw_intents = dict(Message.objects.filter(role="user").values_list("intent").annotate(n=Count("id")))
    assert intents == {(name or "unclassified"): count for name, count in raw_intents.items()}


def test_rollup_is_idempotent(traffic):
    # given a rolled-up range
    rollup_hours(traffic.start, traffic.end)
    first = sorted((r.hour, r.knowledge_base_id, r.widget_key_id, r.questions, r.ttft_buckets)
                   for r in HourlyRollup.objects.all())
    # when it is rolled up again
    rollup_hours(traffic.start, traffic.end)
    # then the rows are the same, not doubled
    again = sorted((r.hour, r.knowledge_base_id, r.widget_key_id, r.questions, r.ttft_buckets)
                   for r in HourlyRollup.objects.all())
    assert again == first and first


def test_rollup_of_an_empty_range_writes_nothing_and_clears_stale_rows(db):
    # given a rollup row left from data that no longer exists
    kb = seed.knowledge_base()
    HourlyRollup.objects.create(hour=START, knowledge_base_id=kb.pk, questions=5)
    # when the empty range is rolled up
    result = rollup_hours(START, START + timedelta(hours=3))
    # then nothing is written and the stale row is gone
    assert result.hourly_rows == 0 and HourlyRollup.objects.count() == 0


def test_hours_are_utc_whatever_the_display_time_zone(db, settings):
    # given a display time zone half an hour off UTC and two questions either side of UTC midnight
    settings.TIME_ZONE = "Asia/Kolkata"
    kb = seed.knowledge_base()
    midnight = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    conv = seed.conversation(kb, at=midnight - timedelta(minutes=5))
    seed.exchange(conv, at=midnight - timedelta(microseconds=1))
    seed.exchange(conv, at=midnight)
    # when the day around it is rolled up
    rollup_hours(midnight - timedelta(hours=2), midnight + timedelta(hours=2))
    # then each lands in its own UTC hour
    rows = {row.hour: row.questions for row in HourlyRollup.objects.all()}
    assert rows == {midnight - timedelta(hours=1): 1, midnight: 1}


def test_partial_hours_are_widened_to_whole_hours(db):
    # given a question at 10:50
    kb = seed.knowledge_base()
    at = datetime(2026, 3, 2, 10, 50, tzinfo=UTC)
    seed.exchange(seed.conversation(kb, at=at), at=at)
    # when the range 10:30–10:40 is asked for
    result = rollup_hours(at - timedelta(minutes=20), at - timedelta(minutes=10))
    # then the whole 10:00 hour is recomputed
    assert (result.start.hour, result.end.hour) == (10, 11)
    assert HourlyRollup.objects.get().questions == 1


def test_latency_percentiles_from_rollups_track_the_raw_values(db):
    # given 400 generated replies with known first-token times in one hour
    kb = seed.knowledge_base()
    rng = random.Random(3)
    conv = seed.conversation(kb, at=START)
    values = [rng.lognormvariate(6.5, 0.6) for _ in range(400)]
    for value in values:
        seed.exchange(conv, at=START + timedelta(minutes=1), timings={"first_token_ms": value, "total_ms": value * 3})
    # when rolled up and read back
    rollup_hours(START, START + timedelta(hours=1))
    row = HourlyRollup.objects.get()
    # then p50/p95/p99 lie inside the bucket that holds the raw percentile
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        raw = ordered[int(q * len(ordered)) - 1]
        estimate = histogram.quantile(row.ttft_buckets, q)
        index = histogram.bucket_of(raw)
        lower = histogram.BUCKETS_MS[index - 1] if index else 0
        assert lower <= estimate <= histogram.BUCKETS_MS[index], (q, raw, estimate)
    assert sum(row.ttft_buckets) == sum(row.total_buckets) == 400


def test_cached_questions_are_counted_per_question_group(db):
    # given the same question asked three times, twice answered from the cache
    kb = seed.knowledge_base()
    conv = seed.conversation(kb, at=START)
    seed.exchange(conv, at=START, question="Refund policy?", outcome="answered")
    seed.exchange(conv, at=START, question="refund   policy?", outcome="cached")
    seed.exchange(conv, at=START, question="REFUND POLICY?", outcome="cached")
    # when rolled up
    rollup_hours(START, START + timedelta(hours=1))
    # then one question group with three asks and two cache hits
    group = QuestionRollup.objects.get()
    assert (group.asked, group.cached) == (3, 2)


def test_refresh_picks_up_late_replies_and_late_feedback(db):
    # given an old hour rolled up while its reply was still pending
    kb = seed.knowledge_base()
    old = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    conv = seed.conversation(kb, at=old)
    asked, reply = seed.exchange(conv, at=old + timedelta(minutes=5), outcome="pending", timings={})
    rollup_refresh(now=old + timedelta(hours=1))
    assert HourlyRollup.objects.get().outcome_pending == 1
    # when, a day later, the reply finishes and is rated, and the next refresh runs
    later = old + timedelta(days=1)
    Message.objects.filter(pk__in=[asked.pk, reply.pk]).update(outcome="answered", completed_at=later)
    Message.objects.filter(pk=reply.pk).update(timings={"total_ms": 1200.0})
    Feedback.objects.create(message=reply, rating="down")
    Feedback.objects.filter(message=reply).update(updated_at=later)
    rollup_refresh(now=later + timedelta(minutes=1))
    # then the old hour shows the final outcome and the rating
    row = HourlyRollup.objects.get(hour=old)
    assert (row.outcome_pending, row.outcome_answered, row.feedback_down) == (0, 1, 1)
    assert RollupState.objects.get().watermark == later + timedelta(minutes=1)


def test_first_refresh_rolls_up_everything_since_the_first_message(traffic):
    # given no refresh has run yet
    assert not RollupState.objects.exists()
    # when the first one runs
    rollup_refresh(now=traffic.end + timedelta(hours=2))
    # then all traffic is in the rollups
    assert HourlyRollup.objects.aggregate(n=Sum("messages"))["n"] == traffic.messages


def test_rollup_task_runs_the_refresh_and_is_scheduled(traffic, settings):
    # given the beat schedule from settings
    entry = settings.CELERY_BEAT_SCHEDULE["analytics-rollup"]
    assert entry["task"] == "analytics.rollup"
    assert "inference-reap-stale" in settings.CELERY_BEAT_SCHEDULE  # merged, not replaced
    # when the task body runs
    from analytics.tasks import rollup

    rollup.run()
    # then the rollups hold the traffic
    assert HourlyRollup.objects.aggregate(n=Sum("messages"))["n"] == traffic.messages


def test_expert_load_is_rolled_up_per_hour_model_and_layer(db):
    from analytics.models import ExpertLoadRollup
    from inference.models import GenerationJob

    # given two MoE generations in one hour (as inference.moe stores them) and a dense one
    finished = START + timedelta(minutes=10)
    for counts in ([[4, 0, 2, 2], [1, 1, 1, 5]], [[0, 4, 2, 2], [1, 1, 1, 5]]):
        GenerationJob.objects.create(messages=[], temperature=0, top_p=1, max_new_tokens=8, status="done",
                                     model="tiny-moe", finished_at=finished,
                                     expert_counts={"layers": [0, 3], "num_experts": 4, "counts": counts})
    GenerationJob.objects.create(messages=[], temperature=0, top_p=1, max_new_tokens=8, status="done",
                                 model="dense", finished_at=finished, expert_counts=None)
    # when the hour is rolled up
    rollup_hours(START, START + timedelta(hours=1))
    # then each layer holds the summed tokens per expert and the request count
    rows = {(r.model, r.layer): (r.counts, r.requests) for r in ExpertLoadRollup.objects.all()}
    assert rows == {("tiny-moe", 0): ([4, 4, 4, 4], 2), ("tiny-moe", 3): ([2, 2, 2, 10], 2)}


def test_only_the_most_asked_questions_of_a_day_are_kept(db, monkeypatch):
    # given four distinct questions asked 3, 2, 1 and 1 times on one day, and a cap of two per day
    monkeypatch.setattr("analytics.rollups.QUESTIONS_PER_DAY", 2)
    kb = seed.knowledge_base()
    conv = seed.conversation(kb, at=START)
    for text, times in [("a?", 3), ("b?", 2), ("c?", 1), ("d?", 1)]:
        for _ in range(times):
            seed.exchange(conv, at=START + timedelta(minutes=30), question=text)
    # when the day is rolled up
    rollup_hours(START, START + timedelta(hours=1))
    # then the two most asked are kept with their counts
    assert sorted(QuestionRollup.objects.values_list("text", "asked")) == [("a?", 3), ("b?", 2)]


def test_embedded_dashboard_refresh_is_throttled(db, settings):
    from django.utils import timezone

    from analytics.services import dashboard_rollups_refresh

    # given a refresh just ran on an empty database
    settings.KEFU_ANALYTICS_REFRESH_AFTER_S = 60
    kb = seed.knowledge_base()
    assert dashboard_rollups_refresh() == [] and RollupState.objects.exists()
    # when a question arrives and the dashboard opens again within the minute
    now = timezone.now()
    seed.exchange(seed.conversation(kb, at=now), at=now)
    dashboard_rollups_refresh()
    # then nothing was recomputed
    assert not HourlyRollup.objects.exists()
    # and once the minute has passed (here: the limit is lowered) the question is rolled up
    settings.KEFU_ANALYTICS_REFRESH_AFTER_S = 0
    dashboard_rollups_refresh()
    assert HourlyRollup.objects.get().questions == 1


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
def test_daily_rows_are_the_sums_of_their_local_days_hourly_rows(traffic, settings, zone):
    from django.utils import timezone

    from analytics.models import DailyRollup

    # given a display time zone (half an hour off UTC, or with DST) and the traffic rolled up
    settings.TIME_ZONE = zone
    rollup_hours(traffic.start, traffic.end + timedelta(hours=1))
    # then each daily row equals the sum of the hourly rows starting on that local day
    expected: dict = {}
    for row in HourlyRollup.objects.all():
        key = (timezone.localtime(row.hour).date(), row.knowledge_base_id, row.widget_key_id)
        totals = expected.setdefault(key, [0, 0, histogram.empty()])
        totals[0] += row.questions
        totals[1] += row.prompt_tokens
        totals[2] = histogram.merged([totals[2], row.ttft_buckets])
    daily = {(r.day, r.knowledge_base_id, r.widget_key_id): [r.questions, r.prompt_tokens, r.ttft_buckets]
             for r in DailyRollup.objects.all()}
    assert daily == expected and len(daily) > 3


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_a_30_day_window_reads_the_same_totals_from_daily_and_hourly_rows(db, settings, zone):
    from django.utils import timezone

    from analytics.filters import dashboard_filter_parse
    from analytics.selectors.dashboard import rollup_rows, window_parts

    # given traffic over the last 40 days, rolled up
    settings.TIME_ZONE = zone
    kb = seed.knowledge_base("shop")
    now = timezone.now()
    seed.random_traffic(bases=[kb], keys={kb.pk: [seed.widget_key(kb)]}, start=now - timedelta(days=40), hours=40 * 24,
                        conversations=150)
    rollup_refresh()
    # when the 30-day window is read (whole days from daily rows, the edges from hourly rows)
    flt = dashboard_filter_parse({"range": "30d"})
    parts = window_parts(flt)
    rows = rollup_rows(flt)
    # then its totals equal the hourly rows of the same window
    assert parts.first_day is not None
    hourly = HourlyRollup.objects.filter(hour__gte=flt.start.replace(minute=0, second=0, microsecond=0),
                                         hour__lt=flt.end)
    assert sum(row["questions"] for row in rows) == sum(row.questions for row in hourly) > 0
    assert histogram.merged(row["ttft_buckets"] for row in rows) == histogram.merged(r.ttft_buckets for r in hourly)


def test_changing_the_time_zone_recomputes_the_daily_rows(traffic, settings):
    from analytics.models import DailyRollup

    # given rollups cut in UTC
    rollup_refresh(now=traffic.end + timedelta(hours=1))
    utc_days = set(DailyRollup.objects.values_list("day", "knowledge_base_id", "widget_key_id", "questions"))
    # when the display zone changes and the next refresh runs
    settings.TIME_ZONE = "Asia/Tokyo"
    rollup_refresh(now=traffic.end + timedelta(hours=2))
    # then the daily rows were cut again, in the new zone
    assert set(DailyRollup.objects.values_list("day", "knowledge_base_id", "widget_key_id", "questions")) != utc_days
    assert RollupState.objects.get().time_zone == "Asia/Tokyo"
