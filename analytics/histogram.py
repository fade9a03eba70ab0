"""Fixed-bucket latency histograms: what rollups store so percentiles can be read back.

Each rollup keeps counts per bucket of :data:`BUCKETS_MS` (upper bounds, the last one
open-ended). Histograms of different hours add element-wise, and a quantile is read the
way Prometheus' ``histogram_quantile`` does: find the bucket holding the q-th
observation and interpolate linearly inside it. The error is bounded by the bucket
width, which is why the bounds are dense where customer-service latencies live.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

# Upper bounds in milliseconds; observations above the last bound go to the overflow bucket.
BUCKETS_MS: tuple[float, ...] = (
    25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000,
    7500, 10000, 15000, 20000, 30000, 60000, 120000,
)
SIZE = len(BUCKETS_MS) + 1


def empty() -> list[int]:
    return [0] * SIZE


def bucket_of(value_ms: float) -> int:
    """Index of the bucket whose upper bound is the first ≥ value (Prometheus ``le`` semantics)."""
    return bisect.bisect_left(BUCKETS_MS, value_ms)


def observe(counts: list[int], value_ms: float) -> None:
    counts[bucket_of(value_ms)] += 1


def merged(histograms: Iterable[Sequence[int]]) -> list[int]:
    total = empty()
    for counts in histograms:
        for index, count in enumerate(counts[:SIZE]):
            total[index] += count
    return total


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q ≤ 1) in ms, interpolated inside its bucket; None when empty."""
    n = sum(counts)
    if n == 0:
        return None
    rank = q * n
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = BUCKETS_MS[index - 1] if index > 0 else 0.0
            if index >= len(BUCKETS_MS):
                return float(BUCKETS_MS[-1])  # overflow bucket: report its lower bound, like Prometheus
            upper = BUCKETS_MS[index]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return float(BUCKETS_MS[-1])
