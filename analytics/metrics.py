"""Prometheus metrics of the web process, and the ``/metrics`` exposition.

prometheus-client is multiprocess-safe when ``PROMETHEUS_MULTIPROC_DIR`` is set
(several uvicorn workers on one host write their samples to files there; settings
export it from ``KEFU_PROMETHEUS_MULTIPROC_DIR``); otherwise the default registry of
this process is served. Other apps define their own metrics next to the code that
moves them (``chat.metrics``: outcomes and cache lookups; ``inference.metrics``: latency
histograms, queue, tokens, expert load, GPU memory; both imported here so they are
registered before the first scrape); this module adds the HTTP ones, the gauges read at
scrape time from the database and Redis (hand-off inbox, rollup age, ingestion jobs,
generators ready, generation jobs queued/running), and serves all. ``deploy/prometheus/alerts.yml`` alerts on them.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client.core import GaugeMetricFamily

import chat.metrics  # noqa: F401 - registers the pipeline's counters
import inference.metrics  # noqa: F401 - registers the generator's metrics
from analytics.rollups import rollup_watermark
from analytics.selectors.dashboard import live_generations
from chat.models import Conversation
from inference.selectors import generator_status
from kb.models import Document
from kefu.proxies import client_address, forwarded_by_unknown_proxy

HTTP_REQUESTS = Counter(
    "kefu_http_requests_total", "HTTP requests answered, by route and status class.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "kefu_http_request_duration_seconds", "Time to the response headers, by route.", ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# Label values must be bounded: a method nobody standardised (clients may send any token) counts as "other".
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
# When this process started: the rollup age counts from here until a first rollup exists.
PROCESS_STARTED_AT = time.time()


def method_of(request: HttpRequest) -> str:
    """The request's method when it is a standard one, else ``other`` (bounded label values)."""
    method = (request.method or "").upper()
    return method if method in HTTP_METHODS else "other"


def route_of(request: HttpRequest) -> str:
    """The URL pattern name (bounded label values), not the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route or "unnamed"


class RequestMetricsMiddleware:
    """Counts requests and times them per route (works for sync and async views)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        observe(request, response, started)
        return response

    async def __acall__(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        observe(request, response, started)
        return response


def observe(request: HttpRequest, response: HttpResponse, started: float) -> None:
    route, method = route_of(request), method_of(request)
    HTTP_REQUESTS.labels(route, method, status_class(response.status_code)).inc()
    HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)


def status_class(status_code: int) -> str:
    """``2xx`` … ``5xx``; anything outside 100–599 is ``other``."""
    return f"{status_code // 100}xx" if 100 <= status_code <= 599 else "other"


class StaffQueueCollector:
    """Gauges read from the database at scrape time: what no single process counts.

    ``kefu_handoff_waiting`` / ``kefu_handoff_oldest_wait_seconds``: the hand-off inbox;
    ``kefu_analytics_rollup_age_seconds``: how stale the dashboard's rollups are (beat stopped?) — exported
    from the start: before any rollup exists it is the age of this process, so the stale alert can fire
    when beat never ran at all.
    Two indexed queries per scrape; a database that does not answer yields no samples.
    """

    def collect(self):
        try:
            waiting, oldest_s, rollup_age_s = staff_queue_figures()
        except DatabaseError:
            return
        yield GaugeMetricFamily("kefu_handoff_waiting", "Conversations waiting for a person.", value=waiting)
        yield GaugeMetricFamily("kefu_handoff_oldest_wait_seconds",
                                "Seconds the longest-waiting handed-off conversation has waited.", value=oldest_s)
        yield GaugeMetricFamily("kefu_analytics_rollup_age_seconds",
                                "Seconds since the analytics rollups were last refreshed (since this process "
                                "started when none was yet).", value=rollup_age_s)


def staff_queue_figures() -> tuple[int, float, float]:
    now = timezone.now()
    inbox = Conversation.objects.filter(status=Conversation.Status.HANDED_OFF).aggregate(
        n=Count("id"), oldest=Min("handed_off_at"))
    oldest_s = (now - inbox["oldest"]).total_seconds() if inbox["oldest"] else 0.0
    watermark = rollup_watermark()
    rollup_age_s = (now - watermark).total_seconds() if watermark else time.time() - PROCESS_STARTED_AT
    return inbox["n"], oldest_s, rollup_age_s


STAFF_QUEUE_COLLECTOR = StaffQueueCollector()


class IngestionCollector:
    """Ingestion jobs read from the database at scrape time (the ingest worker serves no metrics of its own).

    ``kefu_ingestion_documents{status}``: documents per status, every status present (0 too), so a
    rise in ``failed`` is visible; ``kefu_ingestion_oldest_active_seconds``: seconds since the
    least recently moved queued/parsing/embedding/indexing document last saved progress (its
    heartbeat) — 0 when none is in flight. One GROUP BY over the document table per scrape.
    """

    def collect(self):
        try:
            per_status, oldest_s = ingestion_figures()
        except DatabaseError:
            return
        documents = GaugeMetricFamily("kefu_ingestion_documents", "Knowledge-base documents by ingestion status.",
                                      labels=["status"])
        for status, count in per_status.items():
            documents.add_metric([status], count)
        yield documents
        yield GaugeMetricFamily("kefu_ingestion_oldest_active_seconds",
                                "Seconds since the least recently moved in-flight document saved progress.",
                                value=oldest_s)


def ingestion_figures() -> tuple[dict[str, int], float]:
    counts = dict(Document.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    per_status = {status: counts.get(status, 0) for status in Document.Status.values}
    oldest = Document.objects.filter(status__in=Document.ACTIVE_STATUSES).aggregate(t=Min("updated_at"))["t"]
    return per_status, (timezone.now() - oldest).total_seconds() if oldest else 0.0


class GeneratorCollector:
    """``kefu_generator_ready``: generators ready to serve — live inference workers' heartbeats that say
    ready (service mode), or 1/0 for the in-process engine (embedded mode); what ``/readyz`` reads.
    ``kefu_generation_jobs{status}``: generation jobs queued (not yet claimed by a worker thread: the
    backlog the engine's own ``kefu_num_requests_waiting`` cannot see) and running, from the job table."""

    def collect(self):
        yield GaugeMetricFamily("kefu_generator_ready",
                                "Generators ready to serve (ready inference workers, or the in-process engine).",
                                value=generators_ready())
        try:
            running, queued = live_generations()
        except DatabaseError:
            return
        jobs = GaugeMetricFamily("kefu_generation_jobs", "Generation jobs queued for a worker, and running.",
                                 labels=["status"])
        jobs.add_metric(["queued"], queued)
        jobs.add_metric(["running"], running)
        yield jobs


def generators_ready() -> int:
    status = generator_status()
    workers = status.extra.get("workers")
    if workers is None:
        return int(status.ok)
    return sum(1 for worker in workers if worker.get("status") == "ready")


SCRAPE_TIME_COLLECTORS = (STAFF_QUEUE_COLLECTOR, IngestionCollector(), GeneratorCollector())


def registry() -> CollectorRegistry:
    """All processes' samples in multiprocess mode, else this process's registry; plus the DB gauges."""
    collected = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(collected)
    else:
        collected.register(ProcessRegistry())
    for collector in SCRAPE_TIME_COLLECTORS:
        collected.register(collector)
    return collected


class ProcessRegistry:
    """This process's default registry as one collector, so the DB gauges can sit beside it."""

    def collect(self):
        yield from DEFAULT_REGISTRY.collect()


def may_scrape(request: HttpRequest) -> bool:
    """A bearer token when KEFU_METRICS_TOKEN is set; otherwise only the allowed networks."""
    token = settings.KEFU_METRICS_TOKEN
    if token:
        return bearer_token_matches(request, token)
    if forwarded_by_unknown_proxy(request):
        return False  # through an undeclared proxy on loopback, the whole internet would look local
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in settings.KEFU_METRICS_ALLOWED_NETWORKS)


def bearer_token_matches(request: HttpRequest, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time (bytes: any header text is safe)."""
    sent = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(sent, f"Bearer {token}".encode("utf-8", "surrogateescape"))


def exposition() -> bytes:
    return generate_latest(registry())


CONTENT_TYPE = CONTENT_TYPE_LATEST
