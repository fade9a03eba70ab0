"""/metrics: Prometheus text, protected, and summed across web processes."""

import re

import pytest

from tests.conftest import http_get


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


@pytest.mark.django_db
def test_metrics_count_requests_per_route(client):
    # given some traffic
    before = sample(client.get("/metrics").content.decode(), "kefu_http_requests_total",
                    route="healthz", method="GET", status="2xx")
    for _ in range(3):
        client.get("/healthz")
    # when scraped from loopback
    response = client.get("/metrics")
    # then the counter moved by exactly the requests made, in Prometheus text format
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert sample(text, "kefu_http_requests_total", route="healthz", method="GET", status="2xx") == before + 3
    assert "kefu_http_request_duration_seconds_bucket" in text


@pytest.mark.django_db
def test_metrics_refuse_other_networks_without_token(client, settings):
    # given the default loopback-only policy / when scraped from elsewhere / then 403 JSON
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


@pytest.mark.django_db
def test_metrics_token_is_required_when_set(client, settings):
    # given a token
    settings.KEFU_METRICS_TOKEN = "s3cret"
    # then loopback alone is not enough, the bearer token is
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


@pytest.mark.django_db
def test_metrics_token_is_compared_in_constant_time(client, settings, monkeypatch):
    import hmac

    import analytics.metrics

    # given a token, and every comparison recorded
    settings.KEFU_METRICS_TOKEN = "s3cret"
    compared, original = [], hmac.compare_digest

    def compare_digest(a, b):
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(analytics.metrics.hmac, "compare_digest", compare_digest)
    # when a wrong token, a non-ASCII one and the right one are sent
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3creX").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cr\u00e9t").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    # then each went through hmac.compare_digest on bytes (no early-exit string comparison)
    assert len(compared) == 3 and all(isinstance(a, bytes) and b == b"Bearer s3cret" for a, b in compared)


@pytest.mark.django_db
def test_invented_http_methods_are_counted_as_other(client):
    # given requests with methods nobody standardised, each one different
    before = sample(client.get("/metrics").content.decode(), "kefu_http_requests_total",
                    route="healthz", method="other", status="4xx")
    for n in range(5):
        client.generic(f"X{n}BOGUS", "/healthz")
    # when scraped
    text = client.get("/metrics").content.decode()
    # then they share one series labelled "other", and no invented method became a label value
    assert sample(text, "kefu_http_requests_total", route="healthz", method="other", status="4xx") == before + 5
    assert "BOGUS" not in text
    methods = set(re.findall(r'^kefu_http_\w+\{[^}]*method="([^"]*)"', text, re.M))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other"}


@pytest.mark.django_db
def test_rollup_age_is_exported_before_any_rollup_ran(client, monkeypatch):
    import analytics.metrics

    # given a process that started ten minutes ago and no rollup yet (beat never ran)
    monkeypatch.setattr(analytics.metrics, "PROCESS_STARTED_AT", analytics.metrics.PROCESS_STARTED_AT - 600)
    # when scraped
    text = client.get("/metrics").content.decode()
    # then the rollup age is there, counted from the process start
    age = float(re.search(r"^kefu_analytics_rollup_age_seconds (\S+)$", text, re.M).group(1))
    assert 600 <= age < 700


@pytest.mark.slow
def test_metrics_sum_over_several_web_processes(tmp_path, start_web_server):
    # given two uvicorn worker processes sharing a multiprocess directory
    server = start_web_server(workers=2, KEFU_PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    # when 40 more requests are spread over new connections
    for _ in range(40):
        assert http_get(server.base + "/healthz")[0] == 200
    # then the scrape counts every one of them (41 with the readiness probe), whichever process served it
    text = http_get(server.base + "/metrics")[1].decode()
    assert sample(text, "kefu_http_requests_total", route="healthz", method="GET", status="2xx") == 41


@pytest.mark.django_db
def test_metrics_export_the_hand_off_queue_and_rollup_age(client):
    from datetime import timedelta

    from django.utils import timezone

    from analytics.rollups import rollup_refresh
    from tests.analytics import seed

    # given two conversations waiting for a person, the older for ten minutes, and rollups just refreshed
    kb = seed.knowledge_base()
    now = timezone.now()
    seed.conversation(kb, at=now - timedelta(minutes=10), status="handed_off")
    seed.conversation(kb, at=now - timedelta(minutes=2), status="handed_off")
    seed.conversation(kb, at=now)
    rollup_refresh()
    # when scraped
    text = client.get("/metrics").content.decode()
    # then the inbox size, its oldest wait and the rollup age are there
    assert re.search(r"^kefu_handoff_waiting 2\.0$", text, re.M)
    oldest = float(re.search(r"^kefu_handoff_oldest_wait_seconds (\S+)$", text, re.M).group(1))
    assert 600 <= oldest < 700
    assert 0 <= float(re.search(r"^kefu_analytics_rollup_age_seconds (\S+)$", text, re.M).group(1)) < 60
    assert "kefu_http_requests_total" in text  # the process's own metrics are still served


@pytest.mark.django_db
def test_metrics_export_ingestion_and_generation_backlogs(client):
    from datetime import timedelta

    from django.utils import timezone

    from inference.models import GenerationJob
    from inference.selectors import generator_status
    from kb.models import Document
    from tests.analytics import seed

    # given documents in three states, the in-flight one's progress last saved 20 minutes ago
    kb = seed.knowledge_base()
    for n, status in enumerate(["ready", "failed", "failed", "embedding"]):
        Document.objects.create(knowledge_base=kb, title=f"doc {n}", content_hash=f"hash-{n}", status=status)
    Document.objects.filter(status="embedding").update(updated_at=timezone.now() - timedelta(minutes=20))
    # and three generation jobs no worker has claimed, one running and one done
    for status in ["queued", "queued", "queued", "running", "done"]:
        GenerationJob.objects.create(messages=[], temperature=0, top_p=1, max_new_tokens=8, status=status)
    # when scraped
    text = client.get("/metrics").content.decode()
    # then every ingestion status is there (0 too), with the stalled job's age, and the generation backlog
    assert sample(text, "kefu_ingestion_documents", status="failed") == 2
    assert sample(text, "kefu_ingestion_documents", status="ready") == 1
    assert re.search(r'^kefu_ingestion_documents\{status="queued"\} 0\.0$', text, re.M)
    age = float(re.search(r"^kefu_ingestion_oldest_active_seconds (\S+)$", text, re.M).group(1))
    assert 1200 <= age < 1300
    assert sample(text, "kefu_generation_jobs", status="queued") == 3
    assert sample(text, "kefu_generation_jobs", status="running") == 1
    # and whether a generator is ready, as /readyz sees it (embedded mode: the in-process engine)
    ready = float(re.search(r"^kefu_generator_ready (\S+)$", text, re.M).group(1))
    assert ready == int(generator_status().ok)
