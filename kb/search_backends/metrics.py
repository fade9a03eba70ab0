"""Prometheus metrics of the search backends (served on /metrics with the others)."""

from prometheus_client import Counter, Histogram

BACKEND_SECONDS = Histogram(
    "kefu_search_backend_seconds", "Search-backend calls by backend (local, milvus) and operation "
    "(search, write, prune)", ["backend", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))
BACKEND_ERRORS = Counter(
    "kefu_search_backend_errors", "Search-backend calls that raised, by backend and operation",
    ["backend", "operation"])
