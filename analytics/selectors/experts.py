"""MoE expert load over the dashboard window, from the hourly expert rollups.

The heatmap is tokens per (layer, expert) summed over the window for one model —
the one configured (``KEFU_MODEL``) when it has rows, else the model with the most
recent rows. Imbalance per layer uses :func:`inference.moe.imbalance` (max/mean and
the coefficient of variation of tokens per expert). Expert load is per model, not per
knowledge base: the inference side does not know which base a generation served.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.filters import DashboardFilter
from analytics.models import ExpertLoadDaily, ExpertLoadRollup
from analytics.selectors.charts import ChartSpec, Dataset
from analytics.selectors.dashboard import bucket_keys, bucket_label, bucket_mapper, window_parts


@dataclass(frozen=True)
class ExpertRow:
    """One hourly rollup row, read without building model instances."""

    hour: object
    model: str
    layer: int
    counts: list


@dataclass(frozen=True)
class LayerRow:
    layer: int
    cells: tuple[tuple[int, float], ...]  # (tokens, share of the layer's hottest expert 0..1) per expert
    max_over_mean: float
    coefficient_of_variation: float


@dataclass(frozen=True)
class ExpertLoad:
    model: str
    num_experts: int
    layers: tuple[LayerRow, ...]
    charts: tuple[ChartSpec, ...]

    @property
    def empty(self) -> bool:
        return not self.layers


def imbalance(counts: list[int]) -> tuple[float, float]:
    from inference.moe import imbalance as moe_imbalance  # pure Python: no torch on this path

    return moe_imbalance(counts)


def served_model(rows) -> str:
    models = {row.model for row in rows}
    if settings.KEFU_MODEL in models:
        return settings.KEFU_MODEL
    return max(rows, key=lambda row: row.hour).model if rows else ""


def summed(rows) -> dict[int, list[int]]:
    totals: dict[int, list[int]] = {}
    for row in rows:
        total = totals.setdefault(row.layer, [0] * len(row.counts))
        if len(total) < len(row.counts):
            total.extend([0] * (len(row.counts) - len(total)))
        for expert, tokens in enumerate(row.counts):
            total[expert] += tokens
    return totals


def layer_row(layer: int, counts: list[int]) -> LayerRow:
    hottest = max(counts) or 1
    ratio, cv = imbalance(counts)
    return LayerRow(layer, tuple((tokens, tokens / hottest) for tokens in counts), round(ratio, 2), round(cv, 3))


def imbalance_charts(rows, flt: DashboardFilter) -> tuple[ChartSpec, ...]:
    keys = bucket_keys(flt)
    labels = tuple(bucket_label(key, flt.bucket) for key in keys)
    per_bucket: dict[tuple, list] = defaultdict(list)
    bucket_for = bucket_mapper(flt.bucket)
    for row in rows:
        per_bucket[(bucket_for(row.hour), row.layer)].append(row)
    layers = sorted({row.layer for row in rows})
    ratio_sets, cv_sets = [], []
    for layer in layers:
        figures = []
        for key in keys:
            bucket_rows = per_bucket.get((key, layer))
            figures.append(imbalance(summed(bucket_rows)[layer]) if bucket_rows else (None, None))
        ratio_sets.append(Dataset(_("layer %(layer)s") % {"layer": layer}, tuple(round(r, 2) if r is not None else None for r, _ in figures)))
        cv_sets.append(Dataset(_("layer %(layer)s") % {"layer": layer}, tuple(round(c, 3) if c is not None else None for _, c in figures)))
    return (ChartSpec("expert-ratio", _("Expert load imbalance: max / mean"), "line", labels, tuple(ratio_sets),
                      y_label=_("max/mean (1 = balanced)")),
            ChartSpec("expert-cv", _("Expert load imbalance: coefficient of variation"), "line", labels,
                      tuple(cv_sets), y_label="CV"))


def expert_rows(flt: DashboardFilter) -> list[ExpertRow]:
    """Hourly rows at the window's edges, daily rows for the whole days inside (see window_parts)."""
    parts = window_parts(flt)
    rows = []
    for start, end in parts.hourly:
        if start < end:
            rows += [ExpertRow(*values) for values in ExpertLoadRollup.objects.filter(hour__gte=start, hour__lt=end)
                     .values_list("hour", "model", "layer", "counts")]
    if parts.first_day:
        zone = timezone.get_current_timezone()
        rows += [ExpertRow(datetime.combine(day, time.min, tzinfo=zone), model, layer, counts)
                 for day, model, layer, counts in ExpertLoadDaily.objects.filter(
                     day__gte=parts.first_day, day__lte=parts.last_day).values_list("day", "model", "layer", "counts")]
    return rows


def expert_load(flt: DashboardFilter) -> ExpertLoad:
    rows = expert_rows(flt)
    model = served_model(rows)
    rows = [row for row in rows if row.model == model]
    if not rows:
        return ExpertLoad(model or settings.KEFU_MODEL, 0, (), ())
    totals = summed(rows)
    layers = tuple(layer_row(layer, counts) for layer, counts in sorted(totals.items()))
    return ExpertLoad(model, max(len(counts) for counts in totals.values()), layers, imbalance_charts(rows, flt))
