"""Analytics tables: hourly and daily rollups of the chat and inference records, and the watermark.

Rollups are derived data, recomputed from the other apps' rows by
:func:`analytics.rollups.rollup_hours`; dashboard charts read only these, so a page
costs a few hundred rows whatever the message count. Hours are UTC hour starts; a
daily row is the sum of the hourly rows whose hour starts on that day in the display
time zone (``TIME_ZONE``), so charts with daily points read ~24× fewer rows.
The knowledge base and widget key are stored as plain ids (no foreign keys): a rollup
row never blocks or cascades a delete in another app, and analytics never writes there.
"""

from __future__ import annotations

from django.db import models


def empty_list() -> list:
    return []


class RollupMetrics(models.Model):
    """What is counted per slot; hourly and daily rows share it."""

    knowledge_base_id = models.PositiveIntegerField()
    widget_key_id = models.PositiveIntegerField(default=0)

    # volume: conversations started, messages of any role, customer questions, distinct visitors this hour
    conversations = models.PositiveIntegerField(default=0)
    messages = models.PositiveIntegerField(default=0)
    questions = models.PositiveIntegerField(default=0)
    visitors = models.PositiveIntegerField(default=0)
    # HyperLogLog of the visitor ids (analytics.sketch): distinct visitors over any set of rows
    visitor_sketch = models.BinaryField(default=b"")

    # what happened to each question (the question row carries its reply's outcome)
    outcome_cached = models.PositiveIntegerField(default=0)
    outcome_direct = models.PositiveIntegerField(default=0)
    outcome_answered = models.PositiveIntegerField(default=0)
    outcome_handed_off = models.PositiveIntegerField(default=0)
    outcome_refused = models.PositiveIntegerField(default=0)
    outcome_failed = models.PositiveIntegerField(default=0)
    outcome_pending = models.PositiveIntegerField(default=0)
    intents = models.JSONField(default=dict)  # {"faq": 12, "knowledge": 40, ...}

    # latency of finished replies, counts per analytics.histogram.BUCKETS_MS bucket
    ttft_buckets = models.JSONField(default=empty_list)
    total_buckets = models.JSONField(default=empty_list)
    queue_ms_sum = models.FloatField(default=0)
    queue_count = models.PositiveIntegerField(default=0)

    # generation cost and speed
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    tokens_per_s_sum = models.FloatField(default=0)
    tokens_per_s_count = models.PositiveIntegerField(default=0)

    # ratings of the replies created this hour (whenever they were rated)
    feedback_up = models.PositiveIntegerField(default=0)
    feedback_down = models.PositiveIntegerField(default=0)

    computed_at = models.DateTimeField(auto_now=True)

    METRIC_FIELDS = (
        "conversations", "messages", "questions", "visitors", "outcome_cached", "outcome_direct", "outcome_answered",
        "outcome_handed_off", "outcome_refused", "outcome_failed", "outcome_pending", "queue_ms_sum", "queue_count",
        "prompt_tokens", "completion_tokens", "tokens_per_s_sum", "tokens_per_s_count", "feedback_up",
        "feedback_down",
    )

    class Meta:
        abstract = True


class HourlyRollup(RollupMetrics):
    """One UTC hour × knowledge base × widget key (0 = no key)."""

    hour = models.DateTimeField()

    class Meta:
        ordering = ["hour"]
        constraints = [
            models.UniqueConstraint(fields=["hour", "knowledge_base_id", "widget_key_id"],
                                    name="analytics_hourly_unique_slot")
        ]
        indexes = [models.Index(fields=["knowledge_base_id", "hour"], name="analytics_hourly_kb_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h kb {self.knowledge_base_id} key {self.widget_key_id}"


class DailyRollup(RollupMetrics):
    """One day of the display time zone × base × key: the sum of that day's hourly rows."""

    day = models.DateField()

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(fields=["day", "knowledge_base_id", "widget_key_id"],
                                    name="analytics_daily_unique_slot")
        ]
        indexes = [models.Index(fields=["knowledge_base_id", "day"], name="analytics_daily_kb_day")]

    def __str__(self) -> str:
        return f"{self.day} kb {self.knowledge_base_id} key {self.widget_key_id}"


class QuestionRollup(models.Model):
    """One normalised question of one UTC day × base × key: how often it was asked, how often cached.

    Daily, and only the ``QUESTIONS_PER_DAY`` most asked per (day, base, key): the long tail of
    one-off questions would otherwise make this table as large as the message table. A
    question frequent over the window is frequent on its days, so the top of the window is kept.
    """

    day = models.DateField()
    knowledge_base_id = models.PositiveIntegerField()
    widget_key_id = models.PositiveIntegerField(default=0)
    question_key = models.CharField(max_length=40)  # sha1 of the normalised text
    text = models.TextField()  # one phrasing as asked
    asked = models.PositiveIntegerField(default=0)
    cached = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day", "knowledge_base_id"], name="analytics_question_day_kb")]

    def __str__(self) -> str:
        return f"{self.text[:60]} ×{self.asked}"


class ExpertLoadRollup(models.Model):
    """Tokens routed to each expert of one MoE layer during one hour, for one served model."""

    hour = models.DateTimeField()
    model = models.CharField(max_length=200)
    layer = models.PositiveIntegerField()
    counts = models.JSONField(default=empty_list)  # tokens per expert, index = expert id
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["hour", "layer"]
        constraints = [
            models.UniqueConstraint(fields=["hour", "model", "layer"], name="analytics_expert_unique_slot")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.model} layer {self.layer}"


class ExpertLoadDaily(models.Model):
    """The sum of one display-time-zone day's hourly expert rows, per model and layer."""

    day = models.DateField()
    model = models.CharField(max_length=200)
    layer = models.PositiveIntegerField()
    counts = models.JSONField(default=empty_list)
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["day", "layer"]
        constraints = [
            models.UniqueConstraint(fields=["day", "model", "layer"], name="analytics_expert_daily_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model} layer {self.layer}"


class RollupState(models.Model):
    """Where the last refresh got to: rows changed after ``watermark`` make their hours stale."""

    name = models.CharField(max_length=50, unique=True)
    watermark = models.DateTimeField()
    # The TIME_ZONE daily rows were cut in; another zone means recomputing them all.
    time_zone = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The staff dashboard's own permission (kefu.roles: Analyst, KB editor); its data are these rollups.
        permissions = [("view_dashboard", "Can view the staff dashboard and its reports")]

    def __str__(self) -> str:
        return f"{self.name} @ {self.watermark:%Y-%m-%d %H:%M:%S}"
