"""The dashboard's numbers, read from the hourly rollups (plus two small live counts).

Everything here costs one query over ``HourlyRollup`` rows of the window (hours × bases ×
keys, a few thousand rows for 30 days) and Python sums; the raw message table is left
to the drill-down pages. Buckets are hours (≤ 2 days) or days in the display time zone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, F, FloatField, Value
from django.db.models.functions import Floor, Least
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics import histogram, sketch
from analytics.filters import DashboardFilter
from analytics.models import DailyRollup, HourlyRollup
from analytics.rollups import OUTCOME_FIELDS, day_first_hour, hour_floor, local_day
from analytics.selectors.charts import ChartSpec, Dataset
from chat.models import Message, WidgetKey
from inference.models import GenerationJob
from kb.models import KnowledgeBase

OUTCOME_LABELS = {
    "cached": gettext_lazy("from cache"), "direct": gettext_lazy("direct FAQ answer"),
    "answered": gettext_lazy("generated"), "handed_off": gettext_lazy("handed off"),
    "refused": gettext_lazy("refused (I don't know)"), "failed": gettext_lazy("failed"),
}
ROLLUP_FIELDS = (
    "hour", "knowledge_base_id", "conversations", "messages", "questions", "visitors", *OUTCOME_FIELDS.values(),
    "intents", "ttft_buckets", "total_buckets", "queue_ms_sum", "queue_count", "prompt_tokens",
    "completion_tokens", "tokens_per_s_sum", "tokens_per_s_count", "feedback_up", "feedback_down", "visitor_sketch",
)


@dataclass(frozen=True)
class Headline:
    """The numbers across the top of the dashboard, for the whole window."""

    conversations: int
    questions: int
    visitors: int
    cache_rate: float | None
    direct_rate: float | None
    handoff_rate: float | None
    refusal_rate: float | None
    feedback_rate: float | None  # rated replies / questions
    thumbs_up_share: float | None  # up / (up + down)
    ttft_p50: float | None
    ttft_p95: float | None
    total_p95: float | None
    prompt_tokens: int
    completion_tokens: int
    generating: int  # generations running now
    waiting: int  # generations queued now
    generation_rejected: int  # generated replies the output gate replaced with Kefu's refusal
    offers_made: int = 0  # "I don't know" replies that offered questions instead
    offers_taken: int = 0  # questions customers asked by taking one of those offers

    @property
    def offers_taken_share(self) -> float | None:
        return self.offers_taken / self.offers_made if self.offers_made else None


@dataclass(frozen=True)
class CostRow:
    day: str
    knowledge_base: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class DashboardData:
    headline: Headline
    charts: tuple[ChartSpec, ...]
    cost_rows: tuple[CostRow, ...]


@dataclass(frozen=True)
class WindowParts:
    """A window read as hourly rows at its edges and daily rows for the whole days inside."""

    hourly: tuple[tuple[datetime, datetime], ...]  # [start, end) hour ranges
    first_day: date | None = None  # daily rows for first_day..last_day, both included
    last_day: date | None = None


def window_parts(flt: DashboardFilter) -> WindowParts:
    """Whole days inside a daily-bucket window come from daily rows (in the zone they were cut in)."""
    start = hour_floor(flt.start)
    if flt.bucket != "day" or timezone.get_current_timezone_name() != timezone.get_default_timezone_name():
        return WindowParts(((start, flt.end),))
    first_day, last_day = local_day(start) + timedelta(days=1), local_day(flt.end) - timedelta(days=1)
    if start == day_first_hour(local_day(start)):
        first_day = local_day(start)  # the window starts on a day boundary: its first day is whole
    if last_day < first_day:
        return WindowParts(((start, flt.end),))
    return WindowParts(((start, day_first_hour(first_day)), (day_first_hour(last_day + timedelta(days=1)), flt.end)),
                       first_day, last_day)


def slot_filtered(rows, flt: DashboardFilter):
    rows = flt.scoped(rows, through="")
    return rows.order_by()


def rollup_rows(flt: DashboardFilter) -> list[dict]:
    """The window's rollup rows as dicts with an ``hour`` (a daily row's is its local midnight)."""
    parts = window_parts(flt)
    rows = []
    for start, end in parts.hourly:
        if start < end:
            rows += slot_filtered(HourlyRollup.objects.filter(hour__gte=start, hour__lt=end), flt).values(
                *ROLLUP_FIELDS)
    if parts.first_day:
        zone = timezone.get_current_timezone()
        fields = ["day", *ROLLUP_FIELDS[1:]]
        for row in slot_filtered(DailyRollup.objects.filter(day__gte=parts.first_day, day__lte=parts.last_day),
                                 flt).values(*fields):
            row["hour"] = datetime.combine(row.pop("day"), time.min, tzinfo=zone)
            rows.append(row)
    return rows


def bucket_of(hour: datetime, bucket: str) -> datetime:
    local = timezone.localtime(hour)
    if bucket == "hour":
        return local
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_mapper(bucket: str):
    """``bucket_of`` memoised per hour: thousands of rows share a few hundred distinct hours."""
    memo: dict[datetime, datetime] = {}

    def bucket_for(hour: datetime) -> datetime:
        found = memo.get(hour)
        if found is None:
            found = memo[hour] = bucket_of(hour, bucket)
        return found

    return bucket_for


def bucket_keys(flt: DashboardFilter) -> list[datetime]:
    """Every bucket of the window, empty ones included, so the x axis is continuous."""
    keys, hour = [], hour_floor(flt.start)
    while hour < flt.end:
        key = bucket_of(hour, flt.bucket)
        if not keys or keys[-1] != key:
            keys.append(key)
        hour += timedelta(hours=1)
    return keys


def bucket_label(key: datetime, bucket: str) -> str:
    return key.strftime("%m-%d %H:00") if bucket == "hour" else key.strftime("%Y-%m-%d")


def grouped(rows: list[dict], flt: DashboardFilter) -> dict[datetime, list[dict]]:
    groups: dict[datetime, list[dict]] = defaultdict(list)
    bucket_for = bucket_mapper(flt.bucket)
    for row in rows:
        groups[bucket_for(row["hour"])].append(row)
    return groups


def total(rows: list[dict], name: str) -> int:
    return sum(row[name] for row in rows)


def share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def average(rows: list[dict], sum_name: str, count_name: str) -> float | None:
    count = total(rows, count_name)
    return round(total(rows, sum_name) / count, 1) if count else None


def merged_histogram(rows: list[dict], name: str) -> list[int]:
    import numpy as np  # summing thousands of 25-bucket rows is a matrix sum

    if not rows:
        return histogram.empty()
    matrix = np.zeros((len(rows), histogram.SIZE), dtype=np.int64)
    for index, row in enumerate(rows):
        counts = row[name][:histogram.SIZE]
        matrix[index, :len(counts)] = counts
    return matrix.sum(axis=0).tolist()


def percentile(rows: list[dict], name: str, q: float) -> float | None:
    return rounded(histogram.quantile(merged_histogram(rows, name), q))


def rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def distinct_visitors(rows: list[dict]) -> int:
    """Visitors over the window do not add up hour by hour: estimated from the rows' HyperLogLog sketches."""
    return sketch.estimate(sketch.union(row["visitor_sketch"] for row in rows))


def live_generations() -> tuple[int, int]:
    """(running, queued) generation jobs right now."""
    counts = dict(GenerationJob.objects.filter(status__in=["running", "queued"]).order_by().values_list("status")
                  .annotate(n=Count("id")))
    return counts.get("running", 0), counts.get("queued", 0)


def headline_of(rows: list[dict], flt: DashboardFilter) -> Headline:
    questions = total(rows, "questions")
    up, down = total(rows, "feedback_up"), total(rows, "feedback_down")
    generating, waiting = live_generations()
    return Headline(
        conversations=total(rows, "conversations"), questions=questions, visitors=distinct_visitors(rows),
        cache_rate=share(total(rows, "outcome_cached"), questions),
        direct_rate=share(total(rows, "outcome_direct"), questions),
        handoff_rate=share(total(rows, "outcome_handed_off"), questions),
        refusal_rate=share(total(rows, "outcome_refused"), questions),
        feedback_rate=share(up + down, questions), thumbs_up_share=share(up, up + down),
        ttft_p50=percentile(rows, "ttft_buckets", 0.5), ttft_p95=percentile(rows, "ttft_buckets", 0.95),
        total_p95=percentile(rows, "total_buckets", 0.95),
        prompt_tokens=total(rows, "prompt_tokens"), completion_tokens=total(rows, "completion_tokens"),
        generating=generating, waiting=waiting, generation_rejected=rejected_generations(flt),
        **offers(flt),
    )


def offers(flt: DashboardFilter) -> dict[str, int]:
    """Refusals of the window that offered questions, and questions customers asked by taking one (the message
    table, window-bound by its ``created_at`` index, as :func:`rejected_generations`)."""
    window = {"created_at__gte": flt.start, "created_at__lt": flt.end}
    made = flt.scoped(Message.objects.filter(role=Message.Role.ASSISTANT, outcome=Message.Outcome.REFUSED, **window)
                      .exclude(suggestions=[]))
    taken = flt.scoped(Message.objects.filter(role=Message.Role.USER, taken_from__isnull=False, **window))
    return {"offers_made": made.order_by().count(), "offers_taken": taken.order_by().count()}


def rejected_generations(flt: DashboardFilter) -> int:
    """Generated replies of the window that the output gate replaced with a refusal (chat.pipeline.output_gate).

    Read from the message table, not the rollups (they count outcomes, not reasons); the window and the
    ``created_at`` index bound the rows read, as for the answerability histogram.
    """
    replies = Message.objects.filter(role=Message.Role.ASSISTANT, outcome=Message.Outcome.REFUSED,
                                     reason="generation_rejected", created_at__gte=flt.start, created_at__lt=flt.end)
    replies = flt.scoped(replies)
    return replies.order_by().count()


def series(keys: list[datetime], groups: dict, value) -> tuple:
    """One value per bucket: ``value(rows of the bucket)``, None for empty buckets where that matters."""
    return tuple(value(groups.get(key, [])) for key in keys)


def volume_chart(keys, labels, groups) -> ChartSpec:
    return ChartSpec("volume", _("Volume"), "line", labels, (
        Dataset(_("conversations"), series(keys, groups, lambda rows: total(rows, "conversations"))),
        Dataset(_("questions"), series(keys, groups, lambda rows: total(rows, "questions"))),
        Dataset(_("messages"), series(keys, groups, lambda rows: total(rows, "messages"))),
        Dataset(_("visitors (unique per hour, summed)"), series(keys, groups, lambda rows: total(rows, "visitors"))),
    ), y_label=_("count"))


def outcome_chart(keys, labels, groups) -> ChartSpec:
    def outcome_share(field: str):
        return lambda rows: (round(100 * total(rows, field) / total(rows, "questions"), 1)
                             if total(rows, "questions") else None)

    datasets = tuple(Dataset(str(OUTCOME_LABELS[outcome]), series(keys, groups, outcome_share(OUTCOME_FIELDS[outcome])),
                             stack="outcomes") for outcome in OUTCOME_LABELS)
    return ChartSpec("outcomes", _("Outcomes (share of questions)"), "bar", labels, datasets, stacked=True,
                     y_label=_("per cent of questions"), percent=True)


def intent_chart(keys, labels, groups, rows: list[dict]) -> ChartSpec:
    names = sorted({name for row in rows for name in row["intents"]})

    def intent_count(name: str):
        return lambda bucket_rows: sum(row["intents"].get(name, 0) for row in bucket_rows)

    datasets = tuple(Dataset(name, series(keys, groups, intent_count(name)), stack="intents") for name in names)
    return ChartSpec("intents", _("Intent mix"), "bar", labels, datasets, stacked=True, y_label=_("questions"))


def latency_chart(keys, labels, groups, field: str, title: str, chart_id: str) -> ChartSpec:
    merged = {key: merged_histogram(groups.get(key, []), field) for key in keys}  # once per bucket, not per q
    datasets = tuple(Dataset(f"p{int(q * 100)}", tuple(rounded(histogram.quantile(merged[key], q)) for key in keys))
                     for q in (0.5, 0.95, 0.99))
    return ChartSpec(chart_id, title, "line", labels, datasets, y_label="ms")


def speed_chart(keys, labels, groups) -> ChartSpec:
    return ChartSpec("speed", _("Generation speed and queue time"), "line", labels, (
        Dataset(_("tokens/s (mean)"), series(keys, groups, lambda rows: average(rows, "tokens_per_s_sum",
                                                                             "tokens_per_s_count"))),
        Dataset(_("queue ms (mean)"), series(keys, groups, lambda rows: average(rows, "queue_ms_sum", "queue_count"))),
    ))


def feedback_chart(keys, labels, groups) -> ChartSpec:
    return ChartSpec("feedback", _("Feedback"), "bar", labels, (
        Dataset(_("thumbs up"), series(keys, groups, lambda rows: total(rows, "feedback_up")), stack="feedback"),
        Dataset(_("thumbs down"), series(keys, groups, lambda rows: total(rows, "feedback_down")), stack="feedback"),
    ), stacked=True, y_label=_("ratings"))


def cost_rows(rows: list[dict], names: dict[int, str]) -> tuple[CostRow, ...]:
    """Prompt and completion tokens per day (display time zone) and knowledge base, newest day first."""
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    day_of = bucket_mapper("day")
    for row in rows:
        key = (day_of(row["hour"]).strftime("%Y-%m-%d"), row["knowledge_base_id"])
        sums[key][0] += row["prompt_tokens"]
        sums[key][1] += row["completion_tokens"]
    ordered = sorted(sums.items(), key=lambda item: (item[0][0], names.get(item[0][1], "")), reverse=True)
    return tuple(CostRow(day, names.get(kb_id, f"#{kb_id}"), prompt, completion)
                 for (day, kb_id), (prompt, completion) in ordered if prompt or completion)


def cost_chart(rows: list[dict], names: dict[int, str], flt: DashboardFilter) -> ChartSpec:
    day_of = bucket_mapper("day")
    days = sorted({day_of(row["hour"]) for row in rows})
    labels = tuple(day.strftime("%Y-%m-%d") for day in days)
    per_base: dict[int, dict[datetime, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in rows:
        sums = per_base[row["knowledge_base_id"]][day_of(row["hour"])]
        sums[0] += row["prompt_tokens"]
        sums[1] += row["completion_tokens"]
    datasets = []
    for kb_id, by_day in sorted(per_base.items()):
        name = names.get(kb_id, f"#{kb_id}")
        datasets.append(Dataset(_("%(base)s prompt") % {"base": name}, tuple(by_day[day][0] for day in days), stack=name))
        datasets.append(Dataset(_("%(base)s completion") % {"base": name}, tuple(by_day[day][1] for day in days), stack=name))
    return ChartSpec("cost", _("Tokens per day per knowledge base"), "bar", labels, tuple(datasets), stacked=True,
                     y_label=_("tokens"))


ANSWERABILITY_BINS = 10


def answerability_counts(flt: DashboardFilter, *, bins: int = ANSWERABILITY_BINS) -> list[int]:
    """Replies of the window per bin of stored answerability ([0, 0.1), …, [0.9, 1]): one grouped count.

    Read from the message table, not the rollups (they carry no answerability); the window and the
    ``created_at`` index bound the rows read.
    """

    replies = Message.objects.filter(role=Message.Role.ASSISTANT, answerability__isnull=False,
                                     created_at__gte=flt.start, created_at__lt=flt.end)
    replies = flt.scoped(replies)
    grouped_rows = (replies.annotate(bin=Least(Floor(F("answerability") * bins), Value(bins - 1),
                                               output_field=FloatField()))
                    .order_by().values("bin").annotate(n=Count("id")).values_list("bin", "n"))
    counts = [0] * bins
    for index, n in grouped_rows:
        counts[min(max(int(index), 0), bins - 1)] += n
    return counts


def answerability_chart(flt: DashboardFilter) -> ChartSpec:
    counts = answerability_counts(flt)
    bins = len(counts)
    labels = tuple(f"{i / bins:.1f}–{(i + 1) / bins:.1f}" for i in range(bins))
    return ChartSpec("answerability", _("Answerability of questions (probability the base answers)"), "bar", labels,
                     (Dataset(_("replies"), tuple(counts)),), y_label=_("replies"))


def knowledge_base_names() -> dict[int, str]:
    return dict(KnowledgeBase.objects.values_list("id", "name"))


def dashboard_data(flt: DashboardFilter) -> DashboardData:
    rows = rollup_rows(flt)
    keys = bucket_keys(flt)
    labels = tuple(bucket_label(key, flt.bucket) for key in keys)
    groups = grouped(rows, flt)
    names = knowledge_base_names()
    charts = (
        volume_chart(keys, labels, groups),
        outcome_chart(keys, labels, groups),
        intent_chart(keys, labels, groups, rows),
        latency_chart(keys, labels, groups, "ttft_buckets", _("Time to first token"), "ttft"),
        latency_chart(keys, labels, groups, "total_buckets", _("Total reply time"), "total"),
        speed_chart(keys, labels, groups),
        cost_chart(rows, names, flt),
        feedback_chart(keys, labels, groups),
        answerability_chart(flt),
    )
    return DashboardData(headline_of(rows, flt), charts, cost_rows(rows, names))


def filter_choices() -> tuple[list[tuple[int, str]], list[tuple[int, str, int]]]:
    """(knowledge bases, widget keys with their base) for the filter form; ids and names only."""
    bases = sorted(knowledge_base_names().items(), key=lambda item: item[1])
    keys = [(pk, name or public_key[:12], kb_id) for pk, name, public_key, kb_id
            in WidgetKey.objects.order_by("knowledge_base_id", "name").values_list("id", "name", "public_key",
                                                                                   "knowledge_base_id")]
    return bases, keys
