"""/healthz answers while the process lives; /readyz says ready or not to anyone, and which component is not
ready only to the metrics token or a staff login."""

import json
import time

import pytest

TOKEN = "readyz-token"
AS_OPERATOR = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.KEFU_METRICS_TOKEN = TOKEN


@pytest.mark.django_db
def test_healthz_answers_with_the_mode(client, settings):
    # when / then
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "mode": settings.KEFU_MODE}


@pytest.mark.django_db
def test_readyz_reports_each_component_and_503_while_one_is_not_ready(client, settings, monkeypatch):
    # given an embedded process whose generator has not started
    import inference.runtime as runtime

    settings.KEFU_MODE, settings.REDIS_URL = "embedded", None
    monkeypatch.setattr(runtime, "_state", runtime.GeneratorState("not_started", ""))
    # when the operator asks with the metrics token
    response = client.get("/readyz", **AS_OPERATOR)
    body = response.json()
    # then every component is listed with its status, and the process is not ready
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert set(body["components"]) == {"database", "redis", "search_backend", "embedding_model", "generator"}
    assert body["components"]["database"]["ok"] is True
    assert body["components"]["redis"] == {"ok": True, "detail": "not configured (embedded mode)"}
    assert body["components"]["generator"]["ok"] is False
    assert body["components"]["generator"]["state"] == "not_started"


@pytest.mark.slow
@pytest.mark.django_db
def test_readyz_is_ready_once_the_models_are_loaded(client, settings):
    # given an embedded process that loaded its embedder and generator
    from inference.runtime import start_in_process_engine
    from kb.embedding import warm_embedder

    settings.KEFU_MODE, settings.REDIS_URL = "embedded", None
    warm_embedder()
    state = start_in_process_engine()
    assert state.status == "ready", state.detail
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ready"


@pytest.mark.django_db
def test_readyz_checks_redis_when_configured(client, settings, redis_url):
    # given service mode with a reachable Redis but no inference worker heartbeat
    settings.KEFU_MODE, settings.REDIS_URL = "service", redis_url
    # when
    body = client.get("/readyz", **AS_OPERATOR).json()
    # then Redis is ok and the generator waits for a worker
    assert body["components"]["redis"]["ok"] is True
    assert body["components"]["generator"]["where"] == "worker"


@pytest.mark.slow
@pytest.mark.django_db
def test_readyz_sees_a_real_inference_worker_heartbeat(client, settings, redis_url, redis_client,
                                                        start_celery_worker):
    # given service mode and a real inference worker with a tiny MoE model
    settings.KEFU_MODE, settings.REDIS_URL = "service", redis_url
    worker = start_celery_worker(["inference"], pool="threads", concurrency=2, env={"KEFU_MODEL": "tiny-olmoe"})
    # when the worker has loaded its model
    deadline = time.monotonic() + 120
    generator = {}
    while time.monotonic() < deadline:
        generator = client.get("/readyz", **AS_OPERATOR).json()["components"]["generator"]
        if generator["ok"]:
            break
        time.sleep(0.5)
    # then /readyz names the worker and its model
    assert generator["ok"], worker.log()[-3000:]
    beats = [beat for beat in generator["workers"] if beat["status"] == "ready"]
    assert any(beat["model"] == "tiny-olmoe" for beat in beats)
    # and a worker that stops removes its heartbeat at once
    worker.stop()
    pids = [json.loads(redis_client.get(key) or "{}").get("pid")
            for key in redis_client.scan_iter(match="kefu:inference:heartbeat:*")]
    assert worker.process.pid not in pids


@pytest.mark.django_db
def test_readyz_tells_the_public_only_ready_or_not(client, settings, redis_url):
    # given service mode whose Redis answers but no inference worker is there (its details name hosts)
    settings.KEFU_MODE, settings.REDIS_URL = "service", redis_url
    # when anyone asks, with no token, a wrong token, or from loopback
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"}):
        response = client.get("/readyz", **headers)
        # then only the state is said: no components, hosts, errors or workers
        assert response.status_code == 503
        assert response.json() == {"status": "not_ready"}
        assert b"6379" not in response.content and b"redis" not in response.content


@pytest.mark.django_db
def test_readyz_shows_details_to_a_staff_login_only(client, settings, django_user_model):
    # given an embedded process, a signed-in customer-facing user and a staff member
    settings.KEFU_MODE, settings.REDIS_URL = "embedded", None
    django_user_model.objects.create_user("visitor", password="pw-visitor-1")
    django_user_model.objects.create_user("ops", password="pw-ops-1", is_staff=True)
    # when a signed-in non-staff user asks / then only the state
    client.login(username="visitor", password="pw-visitor-1")
    assert set(client.get("/readyz").json()) == {"status"}
    # when a staff member asks / then every component
    client.login(username="ops", password="pw-ops-1")
    body = client.get("/readyz").json()
    assert set(body["components"]) == {"database", "redis", "search_backend", "embedding_model", "generator"}
