"""HyperLogLog visitor sketches: near exact for small sets, within a few percent for large ones, unions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import sketch


@pytest.mark.parametrize("n", [0, 1, 3, 7])
def test_tiny_sets_are_counted_exactly(n):
    assert sketch.estimate(sketch.of(f"visitor-{i}" for i in range(n))) == n


@pytest.mark.parametrize("n", [60, 900, 4000])
def test_small_sets_are_counted_within_two_percent(n):
    estimate = sketch.estimate(sketch.of(f"visitor-{i}" for i in range(n)))
    assert abs(estimate - n) <= max(1, 0.02 * n), estimate


@pytest.mark.parametrize("n", [20_000, 150_000])
def test_large_sets_are_estimated_within_five_percent(n):
    estimate = sketch.estimate(sketch.of(f"visitor-{i}" for i in range(n)))
    assert abs(estimate - n) / n < 0.05, estimate


def test_union_counts_visitors_seen_in_several_hours_once():
    # given three hours whose visitors overlap (0–9,999, 5,000–14,999, 10,000–19,999)
    hours = [sketch.of(f"v{i}" for i in range(start, start + 10_000)) for start in (0, 5_000, 10_000)]
    # when their sketches are merged (an empty one among them)
    merged = sketch.union([*hours, b""])
    # then the estimate is of the 20,000 distinct visitors, not the 30,000 visits
    assert sketch.union([]) == bytes(sketch.REGISTERS) and sketch.estimate(b"") == 0
    assert abs(sketch.estimate(merged) - 20_000) / 20_000 < 0.05
    assert merged == sketch.of(f"v{i}" for i in range(20_000))


def test_dashboard_visitors_are_distinct_across_hours(db):
    from analytics.filters import dashboard_filter_parse
    from analytics.rollups import rollup_refresh
    from analytics.selectors.dashboard import dashboard_data
    from tests.analytics import seed

    # given the same three visitors coming back in five different hours
    kb = seed.knowledge_base()
    now = timezone.now()
    for hours_ago in range(1, 6):
        for visitor in ("ana", "bo", "chen"):
            at = now - timedelta(hours=hours_ago)
            seed.exchange(seed.conversation(kb, at=at, visitor=visitor), at=at)
    rollup_refresh()
    # when the day's dashboard is read
    data = dashboard_data(dashboard_filter_parse({"range": "24h"}))
    # then there are three visitors, though the hourly uniques add up to fifteen
    assert data.headline.visitors == 3
    volume = {d.label: sum(d.data) for d in data.charts[0].datasets}
    assert volume["visitors (unique per hour, summed)"] == 15
